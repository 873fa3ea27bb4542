"""Supervision through the HTTP API, on SQLite and PostgreSQL: each preventive rule
refused (422 + rule_id, nothing changed), then passed by a supervisor's override
that shows up as a finding; each contact rule judged when the contact is recorded
(never refused: a finding at once); detective findings from the compliance read
model, judged by the policy version of their day; the rules list; the collectors
report. tests/integration/test_contact_facts.py has the contact check and exceptions.

The customer is in Shanghai (UTC+8); the invoice is due Wednesday 2026-04-01;
the default policy's windows are weekdays 09:00-12:00 and 14:00-18:00.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from collections_es.domain.compliance import PREVENTIVE, RECORDED, RULES, fact_of, findings_as_of

from projections import compliance as model

from .conftest import CUSTOMER, invoice
from .projection_history import History

DUE_MORNING = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai


def at(api, when: datetime) -> None:
    api.services.clock.at = when


def setup_customer(api, **changes: Any) -> None:
    response = api.as_("service").post("/customers", json={**CUSTOMER, **changes})
    assert response.status_code == 201, response.text


def issue(api, number: str, customer: str = CUSTOMER["customer_id"]) -> str:
    at(api, datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    response = api.as_("service").post("/receivables", json=invoice(number, customer_id=customer))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def send(api, who: str, rid: str, command: str, body: dict[str, Any] | None = None):
    return api.as_(who).post(f"/receivables/{rid}/{command}", json=body)


def ok(api, who: str, rid: str, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = send(api, who, rid, command, body)
    assert response.status_code == 200, response.text
    return response.json()


def due(api, number: str, **kw: Any) -> str:
    rid = issue(api, number, **kw)
    at(api, datetime(2026, 3, 25, 2, 0, tzinfo=UTC))
    ok(api, "service", rid, "send-reminder", {"channel": "email"})
    at(api, DUE_MORNING)
    ok(api, "service", rid, "fall-due")
    return rid


def contact(channel: str = "email", **extra: Any) -> dict[str, Any]:
    return {"channel": channel, "outcome": "reached", "note": "spoke to accounts payable", "next_step": "call Friday", **extra}


def adopt(api, version: str, **changes: Any) -> None:
    document = api.as_("supervisor").get("/policy").json()["policy"]
    document.update(version=version, **changes)
    response = api.client.put("/policy", json=document, headers=api.headers("supervisor"))
    assert response.status_code == 200, response.text


def findings(api, who: str = "supervisor", **query: Any) -> list[dict[str, Any]]:
    response = api.as_(who).get("/compliance/findings", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def refused_unchanged(api, who: str, rid: str, command: str, body: dict[str, Any], rule_id: str) -> None:
    before = api.as_("supervisor").get(f"/receivables/{rid}").json()
    response = send(api, who, rid, command, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["rule_id"] == rule_id and problem["type"] == "/problems/rule-violation", problem
    after = api.as_("supervisor").get(f"/receivables/{rid}").json()
    assert (after["version"], after["state"]) == (before["version"], before["state"])


def overridden(api, rid: str, command: str, body: dict[str, Any], rule_id: str, who: str = "supervisor") -> None:
    reason = f"passing {rule_id}: agreed with the customer"
    result = ok(api, who, rid, command, {**body, "override": {"rule_id": rule_id, "reason": reason}})
    history = api.as_("auditor").get(f"/receivables/{rid}/history").json()
    assert history[-1]["override"] == {"rule_id": rule_id, "reason": reason}
    found = [f for f in findings(api, rule_id="override.used", receivable_id=rid) if f["overridden_rule_id"] == rule_id]
    assert len(found) == 1, found
    assert found[0]["event_version"] == result["version"] and found[0]["actor"] == "supervisor-1"
    assert reason in found[0]["detail"]


def recorded_with(api, who: str, rid: str, body: dict[str, Any], *rule_ids: str) -> dict[str, Any]:
    """The contact is recorded (200) and its response lists exactly these rules broken, each
    also a finding about the contact's event, with the collector and the actor."""
    result = ok(api, who, rid, "record-contact", body)
    assert [f["rule_id"] for f in result["findings"]] == list(rule_ids), result["findings"]
    listed = [f for f in findings(api, receivable_id=rid) if f["event_version"] == result["version"]]
    assert sorted(f["rule_id"] for f in listed) == sorted(rule_ids), listed
    assert all(f["collector"] == "collector-1" and f["actor"] == f"{who}-1" for f in listed), listed
    return result


# ---- contact rules, each: the contact is recorded and the breach is a finding at once ---


def test_a_contact_outside_the_window_is_recorded_and_is_a_finding(api):
    setup_customer(api)
    rid = due(api, "INV-W")
    at(api, datetime(2026, 4, 1, 12, 0, tzinfo=UTC))  # 20:00 in Shanghai
    assert recorded_with(api, "collector", rid, contact(), "contact.outside_window")["version"] == 4
    at(api, datetime(2026, 4, 4, 2, 0, tzinfo=UTC))  # Saturday 10:00
    recorded_with(api, "collector", rid, contact(), "contact.outside_window")


def test_contacts_over_the_receivable_cap_are_recorded_and_the_one_over_is_a_finding(api):
    setup_customer(api)
    rid = due(api, "INV-F")
    for minutes in (0, 10, 20):
        at(api, DUE_MORNING + timedelta(minutes=minutes))
        assert ok(api, "collector", rid, "record-contact", contact())["findings"] == []
    at(api, DUE_MORNING + timedelta(minutes=30))
    result = recorded_with(api, "collector", rid, contact(), "contact.frequency_receivable")
    assert "3 contacts" in result["findings"][0]["detail"]


def test_contacts_over_the_customer_cap_across_receivables_are_recorded_and_the_one_over_is_a_finding(api):
    setup_customer(api)
    first, second = due(api, "INV-C1"), due(api, "INV-C2")
    for i, rid in enumerate((first, first, first, second, second)):
        at(api, DUE_MORNING + timedelta(minutes=10 * i))
        ok(api, "collector", rid, "record-contact", contact())
    at(api, DUE_MORNING + timedelta(hours=1))
    recorded_with(api, "collector", second, contact(), "contact.frequency_customer")


def test_a_second_phone_call_in_a_day_is_recorded_and_is_a_finding(api):
    setup_customer(api)
    first, second = due(api, "INV-P1"), due(api, "INV-P2")
    ok(api, "collector", first, "record-contact", contact("phone"))
    at(api, DUE_MORNING + timedelta(hours=5))  # 15:00, the afternoon window
    recorded_with(api, "collector", second, contact("phone"), "contact.phone_per_day")
    assert ok(api, "collector", second, "record-contact", contact("email"))["findings"] == []
    at(api, DUE_MORNING + timedelta(days=1))  # a new day in Shanghai
    assert ok(api, "collector", second, "record-contact", contact("phone"))["findings"] == []


def test_a_contact_by_a_channel_not_allowed_in_the_state_is_recorded_and_is_a_finding(api):
    setup_customer(api)
    rid = due(api, "INV-CH")
    recorded_with(api, "collector", rid, contact("visit"), "contact.channel_not_allowed")


# ---- preventive, each: refused and unchanged, then overridden into a finding ----------


def test_a_follow_up_by_a_channel_not_allowed_in_the_state_is_refused_then_overridden(api):
    setup_customer(api)
    rid = due(api, "INV-CF")
    body = {"channel": "visit", "note": "visit the finance office"}
    refused_unchanged(api, "collector", rid, "start-follow-up", body, "contact.channel_not_allowed")
    overridden(api, rid, "start-follow-up", body, "contact.channel_not_allowed")


def _escalated(api, number: str) -> str:
    rid = due(api, number)
    ok(api, "collector", rid, "record-contact", contact())
    ok(api, "collector", rid, "escalate", {"reason": "no payment after the follow-up"})
    return rid


def test_a_legal_referral_by_a_role_the_policy_excludes_is_refused_then_overridden(api):
    setup_customer(api)
    rid = _escalated(api, "INV-LR")
    adopt(api, "2026.2-legal-only", legal_referral_roles=["legal"])
    body = {"reason": "no response to the dunning letter"}
    refused_unchanged(api, "supervisor", rid, "refer-to-legal", body, "legal_referral.role")
    overridden(api, rid, "refer-to-legal", body, "legal_referral.role")


def test_a_legal_referral_without_the_required_approval_is_refused_then_approved_or_overridden(api):
    setup_customer(api)
    adopt(api, "2026.2-approval", legal_referral_requires_approval=True)
    first, second = _escalated(api, "INV-LA1"), _escalated(api, "INV-LA2")
    body = {"reason": "no response to the dunning letter"}
    refused_unchanged(api, "legal", first, "refer-to-legal", body, "legal_referral.approval")
    ok(api, "supervisor-2", first, "approve-legal-referral", {"note": "evidence file complete"})
    assert ok(api, "legal", first, "refer-to-legal", body)["state"] == "legal"
    assert send(api, "collector", second, "approve-legal-referral", {}).status_code == 403
    refused_unchanged(api, "supervisor", second, "refer-to-legal", body, "legal_referral.approval")
    overridden(api, second, "refer-to-legal", body, "legal_referral.approval")


def test_a_write_off_approved_by_a_role_the_policy_excludes_is_refused_then_overridden(api):
    setup_customer(api)
    rid = _escalated(api, "INV-WR")
    ok(api, "collector", rid, "request-write-off", {"reason": "customer insolvent"})
    refused_unchanged(api, "legal", rid, "approve-write-off", {"note": "agreed"}, "write_off.approver_role")
    adopt(api, "2026.2-legal-approves", write_off_approver_roles=["legal"])
    refused_unchanged(api, "supervisor", rid, "approve-write-off", {"note": "agreed"}, "write_off.approver_role")
    overridden(api, rid, "approve-write-off", {"note": "agreed"}, "write_off.approver_role")


def test_a_write_off_approved_by_its_requester_is_refused_then_overridden(api):
    setup_customer(api)
    rid = _escalated(api, "INV-4E")
    ok(api, "supervisor", rid, "request-write-off", {"reason": "customer insolvent"})
    refused_unchanged(api, "supervisor", rid, "approve-write-off", {}, "write_off.four_eyes")
    overridden(api, rid, "approve-write-off", {}, "write_off.four_eyes")
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["state"] == "written_off"


def test_the_preventive_tests_above_cover_every_preventive_rule_and_every_rule_judged_when_recorded():
    assert {"contact.outside_window", "contact.frequency_receivable", "contact.frequency_customer",
            "contact.phone_per_day", "contact.channel_not_allowed"} >= RECORDED
    covered = {
        "contact.channel_not_allowed",
        "legal_referral.role",
        "legal_referral.approval",
        "write_off.approver_role",
        "write_off.four_eyes",
    }
    assert covered == PREVENTIVE


def test_an_overrides_reason_shows_contact_details_only_to_roles_with_need(api):
    setup_customer(api)
    rid = due(api, "INV-R")
    reason = "customer asked to be called back on 13912345678 tonight"
    ok(api, "supervisor", rid, "grant-contact-exception",
       {"channel": "phone", "reason": reason, "valid_until": "2026-04-02T00:00:00Z"})
    at(api, datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    ok(api, "collector", rid, "record-contact", contact("phone"))
    [seen] = findings(api, rule_id="override.used")
    assert "13912345678" in seen["detail"]
    [masked] = findings(api, who="auditor", rule_id="override.used")
    assert "13912345678" not in masked["detail"] and "139****5678" in masked["detail"]


def test_only_a_supervisor_may_override_and_only_a_rule_that_is_broken(api):
    setup_customer(api)
    rid = due(api, "INV-O")
    body = {"channel": "email", "override": {"rule_id": "contact.channel_not_allowed", "reason": "asked"}}
    assert send(api, "collector", rid, "start-follow-up", body).status_code == 403
    response = send(api, "supervisor", rid, "start-follow-up", body)
    assert response.status_code == 422 and response.json()["rule_id"] == "override.not_needed"
    assert response.json()["field"] == "override.rule_id"
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["version"] == 3


def test_an_override_on_a_contact_is_refused_even_at_night_and_names_the_contact_exception(api):
    setup_customer(api)
    rid = due(api, "INV-ON")
    at(api, datetime(2026, 4, 1, 12, 0, tzinfo=UTC))  # 20:00 in Shanghai
    body = {**contact(), "override": {"rule_id": "contact.outside_window", "reason": "asked"}}
    assert send(api, "collector", rid, "record-contact", body).status_code == 403
    response = send(api, "supervisor", rid, "record-contact", body)
    assert response.status_code == 422 and response.json()["rule_id"] == "override.not_needed"
    assert "grant-contact-exception" in response.json()["detail"]
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["version"] == 3


# ---- detective ----------------------------------------------------------------------


def test_findings_follow_the_clock_and_each_event_is_judged_by_its_own_policy_version(api):
    setup_customer(api)
    at(api, datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    late = issue(api, "INV-D1")  # issued under 2026.1: reminder owed by the end of 25 March
    at(api, datetime(2026, 3, 25, 15, 59, tzinfo=UTC))  # 23:59 on the 25th in Shanghai
    assert findings(api, receivable_id=late) == []
    at(api, datetime(2026, 3, 25, 16, 0, tzinfo=UTC))
    [missed] = findings(api, receivable_id=late)
    assert missed["rule_id"] == "reminder.not_sent_in_time" and missed["policy_version"] == "2026.1"
    assert missed["collector"] == "collector-1" and missed["actor"] is None
    assert missed["occurred_at"].startswith("2026-03-25T16:00:00")

    # Under 2026.1 follow-up is owed 1 day after due; 2026.2 (adopted before the second
    # receivable falls due) gives 5. Both start following up 3 days after due.
    early = due(api, "INV-D2")  # falls due under 2026.1
    adopt(api, "2026.2", follow_up_after_days=5)
    later = issue(api, "INV-D3")
    at(api, datetime(2026, 3, 25, 2, 0, tzinfo=UTC))
    ok(api, "service", later, "send-reminder", {"channel": "email"})
    at(api, DUE_MORNING)
    ok(api, "service", later, "fall-due")
    at(api, datetime(2026, 4, 6, 2, 0, tzinfo=UTC))  # Monday: 3 business days after due
    for rid in (early, later):
        ok(api, "collector", rid, "start-follow-up", {"channel": "email"})
    assert [f["rule_id"] for f in findings(api, receivable_id=early)] == ["follow_up.not_started_in_time"]
    assert findings(api, receivable_id=early)[0]["policy_version"] == "2026.1"
    assert findings(api, receivable_id=later) == []


def test_findings_filter_by_collector_rule_and_period_and_a_collector_sees_only_their_own(api):
    setup_customer(api)
    a, b = due(api, "INV-F1"), due(api, "INV-F2")
    ok(api, "supervisor", b, "assign-collector", {"collector": "collector-2"})
    ok(api, "collector", a, "record-contact", contact(next_step=None))  # no next step: a finding at once
    at(api, datetime(2026, 4, 3, 2, 0, tzinfo=UTC))  # both now late for follow-up? a was contacted, b not
    by_rule = {(f["invoice_number"], f["rule_id"]) for f in findings(api)}
    assert by_rule == {("INV-F1", "contact.without_outcome_or_next_step"), ("INV-F2", "follow_up.not_started_in_time")}
    assert [f["invoice_number"] for f in findings(api, collector="collector-2")] == ["INV-F2"]
    assert [f["invoice_number"] for f in findings(api, rule_id="contact.without_outcome_or_next_step")] == ["INV-F1"]
    assert findings(api, **{"from": "2026-04-02", "to": "2026-04-02"}) == [
        f for f in findings(api) if f["rule_id"] == "follow_up.not_started_in_time"
    ]
    assert findings(api, **{"from": "2026-04-03"}) == []
    # The collector key's id is "collector-1": it sees its own findings only.
    assert [f["invoice_number"] for f in findings(api, who="collector")] == ["INV-F1"]
    assert api.as_("collector").get("/compliance/findings", params={"collector": "collector-2"}).status_code == 422
    assert api.as_("sales").get("/compliance/findings").status_code == 403
    bad = api.as_("supervisor").get("/compliance/findings", params={"rule_id": "no.such"})
    assert bad.status_code == 422 and "rule_id" in bad.text
    page = api.as_("supervisor").get("/compliance/findings", params={"limit": 1})
    assert len(page.json()) == 1 and page.headers["X-Next-Cursor"]
    rest = findings(api, cursor=page.headers["X-Next-Cursor"])
    assert page.json() + rest == findings(api)


def test_the_rules_list_gives_ids_descriptions_and_the_figures_in_force(api):
    adopt(api, "2026.2", contact={**api.as_("supervisor").get("/policy").json()["policy"]["contact"], "max_phone_per_day": 2})
    body = api.as_("sales").get("/compliance/rules").json()
    assert body["policy_version"] == "2026.2"
    by_id = {r["id"]: r for r in body["rules"]}
    assert set(by_id) == set(RULES)
    assert by_id["contact.phone_per_day"]["policy_figures"] == {"contact.max_phone_per_day": 2}
    assert by_id["contact.phone_per_day"]["kind"] == "recorded"
    assert by_id["contact.phone_per_day"]["commands"] == [] and by_id["contact.phone_per_day"]["judged_on"] == ["record_contact"]
    assert by_id["contact.channel_not_allowed"]["kind"] == "preventive"
    assert by_id["contact.channel_not_allowed"]["commands"] == ["send_reminder", "start_follow_up", "remind_installment"]
    assert by_id["limitation.no_action"]["kind"] == "detective" and by_id["limitation.no_action"]["description"]


def test_the_collectors_report_puts_findings_by_rule_beside_the_kpis(api):
    setup_customer(api)
    a = due(api, "INV-K1")
    ok(api, "collector", a, "record-contact", contact(next_step=None))
    ok(api, "collector", a, "record-payment", {"amount": "1200.50", "method": "bank_transfer", "paid_on": "2026-04-01", "reference": "T-1"})
    b = due(api, "INV-K2")
    ok(api, "supervisor", b, "assign-collector", {"collector": "collector-2"})
    at(api, datetime(2026, 4, 10, 2, 0, tzinfo=UTC))
    response = api.as_("auditor").get("/reports/collectors", params={"from": "2026-03-01", "to": "2026-04-09"})
    assert response.status_code == 200, response.text
    report = {row["collector"]: row for row in response.json()["collectors"]}
    assert report["collector-1"]["findings"] == {"contact.without_outcome_or_next_step": 1}
    assert report["collector-1"]["findings_total"] == 1
    [kpi] = report["collector-1"]["kpis"]
    assert kpi["currency"] == "CNY" and kpi["collected"] == "1200.50" and kpi["settled"] == 1
    assert report["collector-2"]["findings"] == {"follow_up.not_started_in_time": 1}
    assert api.as_("collector").get("/reports/collectors").status_code == 403
    one = api.as_("supervisor").get("/reports/collectors", params={"collector": "collector-2", "to": "2026-04-09"}).json()
    assert [row["collector"] for row in one["collectors"]] == ["collector-2"]


def test_the_read_model_equals_judging_every_history_at_now(services):
    """The projection's findings as of several instants equal the pure rules run over
    each receivable's events from the store: the read model adds nothing and loses nothing."""
    generator = History(services.app, receivables=60, seed=5, span_days=120)
    generator.run()
    services.read_models("compliance")
    book = services.app.policy_book()
    policies = {v: book.policy(v) for v in book.versions}
    with services.engine.connect() as conn:
        receivable_ids = {row.id for row in conn.execute(sa.select(model.histories.c.id))}
    assert len(receivable_ids) == 60
    last = generator.stats.last_at
    for now in (last - timedelta(days=60), last, last + timedelta(days=400)):
        expected = set()
        for rid in receivable_ids:
            facts = [fact_of(e) for e in services.app.events.get(uuid.UUID(rid))]
            expected |= {(f.receivable_id, f.rule_id, f.occurred_at) for f in findings_as_of(facts, policies, rid, now)}
        with services.engine.connect() as conn:
            rows = model.list_findings(conn, now=now, limit=100_000)
        actual = {(r["receivable_id"], r["rule_id"], r["occurred_at"].replace(tzinfo=UTC)) for r in rows}
        assert actual == expected
        assert expected, "the generated history should break some rules"
