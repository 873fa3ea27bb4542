"""Strategies over HTTP through the sandbox clock (issue 13, ADR 0050/0051).

Two customers in Shanghai, one in segment `smb` (strategy `strict`), one in segment
`enterprise` (strategy `gentle`), each with the same invoice: CNY 1,200.50 issued
Monday 2 March 2026, due Wednesday 1 April. The policy is the bundled one plus:

- `strict` (segment smb): reminders 3 days before due, at most two, two days apart;
  escalation 10 days past due;
- `gentle` (segment enterprise): one reminder 10 days before due; escalation 45 days past due.

Every instant below is worked out by hand: 09:00 Shanghai is 01:00Z, its midnight 16:00Z
the day before; the bundled windows are weekdays 09:00-12:00 and 14:00-18:00.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from collections_es.adapters.policy_file import bundled_policy_text, parse_policy
from collections_es.application.clock import SandboxClock
from projections.timers import timers

from ..conftest import make_services
from .conftest import Api

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 2 March, 09:00 in Shanghai

STRICT = {
    "id": "strict",
    "match": {"segments": ["smb"]},
    "reminder_lead_days": 3,
    "max_automatic_reminders": 2,
    "reminder_interval_days": 2,
    "escalate_after_days": 10,
}
GENTLE = {"id": "gentle", "match": {"segments": ["enterprise"]}, "reminder_lead_days": 10, "escalate_after_days": 45}


def policy_document(version: str, *strategies: dict[str, Any], **figures: Any) -> dict[str, Any]:
    document = parse_policy(bundled_policy_text()).model_dump(mode="json")
    return {**document, **figures, "version": version, "strategies": list(strategies)}


def customer(customer_id: str, segment: str, **more: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "name": f"{customer_id} 有限公司",
        "timezone": "Asia/Shanghai",
        "tier": "B",
        "preferred_channel": "email",
        "contacts": {"email": f"ap@{customer_id.lower()}.example.cn"},
        "segment": segment,
        **more,
    }


def invoice(number: str, customer_id: str, **more: Any) -> dict[str, Any]:
    return {
        "invoice_number": number,
        "customer_id": customer_id,
        "amount": "1200.50",
        "currency": "CNY",
        "issued_on": "2026-03-02",
        "due_on": "2026-04-01",
        **more,
    }


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def sandbox(database_url: str) -> Iterator[Api]:
    services = make_services(database_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    yield Api(services)
    services.close()


@pytest.fixture
def sqlite_sandbox(sqlite_url: str) -> Iterator[Api]:
    services = make_services(sqlite_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    yield Api(services)
    services.close()


def advance(api: Api, to: str) -> list[dict[str, Any]]:
    return ok(api.as_("supervisor").post("/sandbox/clock/advance", json={"to": to}))["fired"]


def history(api: Api, invoice_number: str) -> list[dict[str, Any]]:
    return ok(api.as_("auditor").get(f"/receivables/{invoice_number}/history"))


def timeline(api: Api, invoice_number: str) -> list[tuple[str, str | None, str, str | None]]:
    """(type, scheduled_for, occurred_at, strategy) of every event after the issue, in UTC."""

    def z(text: str | None) -> str | None:
        return None if text is None else datetime.fromisoformat(text).astimezone(UTC).strftime("%m-%dT%H:%MZ")

    return [
        (e["type"], z(e["scheduled_for"]), z(e["occurred_at"]), e["strategy"])
        for e in history(api, invoice_number)
        if e["type"] != "Issued"
    ]


def adopt(api: Api, document: dict[str, Any]) -> None:
    ok(api.client.put("/policy", json=document, headers=api.headers("supervisor")))


def two_customers(api: Api) -> None:
    adopt(api, policy_document("2026.1-strategies", STRICT, GENTLE))
    ok(api.as_("service").post("/customers", json=customer("C-SMB", "smb")), 201)
    ok(api.as_("service").post("/customers", json=customer("C-ENT", "enterprise")), 201)
    ok(api.as_("service").post("/receivables", json=invoice("INV-SMB", "C-SMB")), 201)
    ok(api.as_("service").post("/receivables", json=invoice("INV-ENT", "C-ENT")), 201)


def test_two_segments_follow_two_cadences_and_a_segment_change_re_plans_without_firing_twice(sandbox):
    api = sandbox
    two_customers(api)
    assert ok(api.as_("auditor").get("/receivables/INV-SMB"))["strategy"] == "strict"
    assert ok(api.as_("auditor").get("/receivables/INV-ENT"))["strategy"] == "gentle"

    advance(api, "2026-04-08T04:00:00Z")
    assert timeline(api, "INV-SMB") == [
        # 3 days before due is Sunday 29 March: the Friday before; the next two days later, on Monday.
        ("ReminderSent", "03-27T01:00Z", "03-27T01:00Z", "strict"),
        ("ReminderSent", "03-30T01:00Z", "03-30T01:00Z", "strict"),
        ("FellDue", "03-31T16:00Z", "03-31T16:00Z", "strict"),
        ("FollowUpStarted", "04-02T01:00Z", "04-02T01:00Z", "strict"),
    ]
    assert timeline(api, "INV-ENT") == [
        # 10 days before due is Sunday 22 March: the Friday before; one reminder only.
        ("ReminderSent", "03-20T01:00Z", "03-20T01:00Z", "gentle"),
        ("FellDue", "03-31T16:00Z", "03-31T16:00Z", "gentle"),
        ("FollowUpStarted", "04-02T01:00Z", "04-02T01:00Z", "gentle"),
    ]

    # 15 April: the enterprise customer moves to segment smb. Its escalation, owed since
    # 11 April under `strict`, fires at once; nothing it had done fires again.
    advance(api, "2026-04-15T04:00:00Z")
    assert ok(api.as_("service").patch("/customers/C-ENT", json={"segment": "smb"}))["segment"] == "smb"
    ok(api.as_("service").patch("/customers/C-ENT", json={"segment": "smb"}))  # the same again: nothing new
    fired = advance(api, "2026-06-01T00:00:00Z")

    assert timeline(api, "INV-SMB")[4:] == [("Escalated", "04-10T16:00Z", "04-10T16:00Z", "strict")]
    assert timeline(api, "INV-ENT")[3:] == [
        ("Replanned", None, "04-15T04:00Z", "strict"),
        ("Escalated", "04-10T16:00Z", "04-15T04:00Z", "strict"),
    ]
    assert [f["kind"] for f in fired if f["outcome"] != "fired"] == []
    ent = ok(api.as_("auditor").get("/receivables/INV-ENT"))
    assert (ent["state"], ent["strategy"], ent["policy_version"]) == ("overdue_escalated", "strict", "2026.1-strategies")


def test_a_policy_change_re_plans_the_open_receivables_from_that_moment(sqlite_sandbox):
    api = sqlite_sandbox
    two_customers(api)
    advance(api, "2026-04-08T04:00:00Z")
    # The new version makes `gentle` escalate after 20 days: owed from 21 April.
    gentler = {**GENTLE, "escalate_after_days": 20}
    adopt(api, policy_document("2026.2", STRICT, gentler))
    # Replay: the timers rebuilt from the log (each event's version and strategy) are the live ones.
    services = api.services
    services.read_models("timers")
    live = timer_rows(services)
    services.projections.rebuild("timers")
    assert timer_rows(services) == live
    assert sorted((row.at.isoformat(), row.policy_version) for row in live if row.kind == "escalate") == [
        ("2026-04-10T16:00:00", "2026.1-strategies"),  # strict: unchanged, not re-planned
        ("2026-04-20T16:00:00", "2026.2"),  # gentle: re-planned under the new version
    ]
    advance(api, "2026-05-01T00:00:00Z")
    assert timeline(api, "INV-ENT")[3:] == [
        ("Replanned", None, "04-08T04:00Z", "gentle"),
        ("Escalated", "04-20T16:00Z", "04-20T16:00Z", "gentle"),
    ]
    # `strict` did not change: its receivable has nothing to re-plan and escalated as before.
    assert timeline(api, "INV-SMB")[4:] == [("Escalated", "04-10T16:00Z", "04-10T16:00Z", "strict")]
    assert [e["policy_version"] for e in history(api, "INV-ENT")][-1] == "2026.2"


def timer_rows(services: Any) -> list[Any]:
    with services.engine.connect() as conn:
        return sorted(conn.execute(sa.select(timers)), key=tuple)


def test_the_simulation_of_a_stricter_policy_lists_earlier_escalations(sqlite_sandbox, tmp_path):
    api = sqlite_sandbox
    two_customers(api)
    advance(api, "2026-04-03T04:00:00Z")  # both following up
    stricter = policy_document("2026.2-stricter", STRICT, {**GENTLE, "escalate_after_days": 15})
    body = {"customer_id": "C-ENT", "policy": stricter, "horizon_days": 120}
    result = ok(api.as_("supervisor").post("/policy/simulate", json=body))
    [plan] = result["receivables"]
    assert plan["invoice_number"] == "INV-ENT" and plan["changed"] is True

    def escalation(side: str) -> str:
        steps = plan[side]["steps"]
        return next(s["at"] for s in steps if s["command"] == "escalate")

    assert (plan["current"]["strategy"], plan["candidate"]["policy_version"]) == ("gentle", "2026.2-stricter")
    assert escalation("current") == "2026-05-15T16:00:00Z"  # 45 days past due
    assert escalation("candidate") == "2026-04-15T16:00:00Z"  # 15 days past due
    assert escalation("candidate") < escalation("current")
    # Nothing was adopted or recorded.
    assert ok(api.as_("auditor").get("/policy"))["version"] == "2026.1-strategies"
    assert [e["type"] for e in history(api, "INV-ENT")][-1] == "FollowUpStarted"
    # Only supervisors and auditors may ask; a bad policy is 422 naming the field.
    assert api.as_("collector").post("/policy/simulate", json=body).status_code == 403
    bad = {**body, "policy": {**stricter, "strategies": [{"id": "x", "escalate_after_days": 0}]}}
    refused = api.as_("supervisor").post("/policy/simulate", json=bad)
    assert refused.status_code == 422 and "strategy 'x'" in refused.json()["detail"]


def test_installment_reminders_come_before_each_installment_through_the_sandbox_and_reach_the_customer(sqlite_sandbox):
    api = sqlite_sandbox
    adopt(api, policy_document("2026.1-installments", installment_reminder_lead_days=3))
    ok(api.as_("service").post("/customers", json=customer("C-PLAN", "smb")), 201)
    ok(api.as_("service").post("/receivables", json=invoice("INV-PLAN", "C-PLAN")), 201)
    advance(api, "2026-04-07T02:00:00Z")  # due 1 April; following up since 2 April
    plan = {
        "installments": [{"due_on": "2026-04-20", "amount": "600.25"}, {"due_on": "2026-05-20", "amount": "600.25"}],
        "reason": "cash flow",
    }
    ok(api.as_("collector").post("/receivables/INV-PLAN/agree-installment-plan", json=plan))
    advance(api, "2026-04-20T02:00:00Z")
    payment = {"amount": "600.25", "method": "bank_transfer", "paid_on": "2026-04-20", "reference": "P-1"}
    ok(api.as_("service").post("/receivables/INV-PLAN/record-payment", json=payment))
    advance(api, "2026-05-19T02:00:00Z")

    reminders = [
        (e["scheduled_for"], e["data"]["installment_due_on"], e["data"]["amount"])
        for e in history(api, "INV-PLAN")
        if e["type"] == "InstallmentReminderSent"
    ]
    assert reminders == [
        ("2026-04-17T01:00:00Z", "2026-04-20", "600.25"),  # Friday, three days before Monday 20 April
        ("2026-05-15T01:00:00Z", "2026-05-20", "600.25"),  # 17 May is a Sunday: the Friday before
    ]
    rid = ok(api.as_("collector").get("/receivables/INV-PLAN"))["id"]
    messages = ok(api.as_("collector").get("/notifications", params={"receivable_id": rid, "kind": "installment_reminder"}))
    subjects = sorted(m["subject"] for m in messages["items"])
    assert len(subjects) == 2 and "2026年5月20日" in subjects[1] and "¥600.25" in subjects[1], subjects


def test_a_customers_own_strategy_and_contact_hours_are_checked_and_narrow_its_plan(sqlite_sandbox):
    api = sqlite_sandbox
    two_customers(api)
    service = api.as_("service")
    refused = service.post("/customers", json=customer("C-X", "smb", strategy_override="no-such"))
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "customer.unknown_strategy")
    refused = service.patch("/customers/C-ENT", json={"preferred_contact_hours": [{"start": "19:00", "end": "21:00"}]})
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "customer.contact_hours")
    assert service.patch("/customers/C-ENT", json={"preferred_contact_hours": [{"start": "12:00", "end": "09:00"}]}).status_code == 422

    # The enterprise customer takes `strict` for itself and prefers 10:30-11:00 (02:30Z-03:00Z).
    hours = [{"start": "10:30", "end": "11:00"}]
    changed = ok(service.patch("/customers/C-ENT", json={"strategy_override": "strict", "preferred_contact_hours": hours}))
    assert (changed["segment"], changed["strategy_override"], changed["preferred_contact_hours"]) == ("enterprise", "strict", hours)
    advance(api, "2026-04-01T00:00:00Z")
    assert timeline(api, "INV-ENT") == [
        ("Replanned", None, "03-02T01:00Z", "strict"),
        # strict: 3 days before due (Sunday 29 March) is Friday 27 March, in the customer's hours.
        ("ReminderSent", "03-27T02:30Z", "03-27T02:30Z", "strict"),
        ("ReminderSent", "03-30T02:30Z", "03-30T02:30Z", "strict"),
        ("FellDue", "03-31T16:00Z", "03-31T16:00Z", "strict"),
    ]
    replanned = next(e for e in history(api, "INV-ENT") if e["type"] == "Replanned")
    assert replanned["data"]["contact_hours"] == hours and "strategy_override" in replanned["reason"]
    # The gate before a contact knows the hours: 09:30 is in the policy's window, not in the customer's.
    check = ok(api.as_("collector").get("/receivables/INV-ENT/contact-check", params={"channel": "phone", "at": "2026-04-01T01:30:00Z"}))
    assert (check["allowed"], check["next_allowed_at"]) == (False, "2026-04-01T02:30:00Z")
