"""A kept promise that leaves a balance returns the receivable to collection (issue 11,
item 1; ADR 0035), over HTTP in the sandbox, with the scheduler catching up what is owed.

CNY 1,000.00 to the Shanghai customer, issued Monday 2 March 2026, due Wednesday
1 April; 30 days past due is 1 May 00:00 in Shanghai (30 April 16:00 UTC). A promise
of 400.00 for 15 April is paid on 10 April. A second receivable is parked as the code
before the fix left it (the covering payment recorded alone, still `promised`): the
next tick frees it. The promise is counted kept once by the KPIs and the credit record.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from collections_es.application.clock import SandboxClock
from collections_es.application.service import Request
from collections_es.domain.receivable import Receivable, receivable_id
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice

ESCALATION_MOMENT = datetime(2026, 4, 30, 16, 0, tzinfo=UTC)  # 1 May 00:00 in Shanghai
PAID_AT = datetime(2026, 4, 10, 2, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def sandbox(database_url: str) -> Iterator[Api]:
    services = make_services(database_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    assert services.sandbox is not None
    api = Api(services)
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    yield api
    services.close()


def advance(api: Api, to: datetime) -> list[dict[str, Any]]:
    moved = ok(api.as_("service").post("/sandbox/clock/advance", json={"to": to.isoformat()}))
    assert utc(moved["now"]) == to
    return moved["fired"]


def promised_400_in_follow_up(api: Api, number: str) -> None:
    """Issued, fallen due and followed up by the scheduler, then 400.00 promised for 15 April."""
    ok(api.as_("service").post("/receivables", json=invoice(number, amount="1000.00")), 201)
    advance(api, utc("2026-04-08T02:00:00Z"))
    assert receivable(api, number)["state"] == "following_up"
    promise = {"amount": "400.00", "promised_on": "2026-04-15"}
    assert ok(api.as_("collector").post(f"/receivables/{number}/promise-to-pay", json=promise))["state"] == "promised"


def receivable(api: Api, number: str) -> dict[str, Any]:
    return ok(api.as_("auditor").get(f"/receivables/{number}"))


def history(api: Api, number: str) -> list[dict[str, Any]]:
    return ok(api.as_("auditor").get(f"/receivables/{number}/history"))


def pay_as_before_the_fix(api: Api, number: str, amount: str, paid_on: date, reference: str) -> None:
    """Record a covering payment as the code before PromiseKept did: the payment alone,
    the receivable left in `promised` (built with the domain's own recorder, so the
    hash chain and the trail are those of a real event)."""
    app = api.services.app
    r = app.get_receivable(receivable_id(number))
    ctx = app._context(Request(Actor("service-1", "service")))
    r._record(Receivable.PaymentRecorded, ctx, state_after=r.state, amount=Decimal(amount),
              method="bank_transfer", paid_on=paid_on, reference=reference)
    app.save(r)


def test_a_promise_of_400_paid_before_its_date_returns_the_receivable_to_collection_and_it_escalates_later(sandbox):
    api = sandbox
    promised_400_in_follow_up(api, "INV-KEPT")
    advance(api, PAID_AT)
    payment = {"amount": "400.00", "method": "bank_transfer", "paid_on": "2026-04-10", "reference": "B-1"}
    paid = ok(api.as_("service").post("/receivables/INV-KEPT/record-payment", json=payment))
    assert (paid["state"], paid["balance"], paid["promise"]) == ("following_up", "600.00", None)
    assert {"escalate", "promise_to_pay"} <= set(paid["allowed_commands"])

    recorded, kept = history(api, "INV-KEPT")[-2:]
    assert (recorded["type"], recorded["state_after"]) == ("PaymentRecorded", "promised")
    assert (kept["type"], kept["state_after"], kept["actor"]) == ("PromiseKept", "following_up", "service-1")
    assert (kept["data"]["amount"], kept["data"]["paid_towards"]) == ("400.00", "400.00")
    assert kept["prev_hash"] == recorded["hash"] and kept["occurred_at"] == recorded["occurred_at"]
    verified = ok(api.as_("auditor").get("/audit/verify"))
    assert (verified["ok"], verified["break_count"]) == (True, 0), "two events of one command chain like any others"

    fired = advance(api, utc("2026-07-10T02:00:00Z"))  # months later
    assert [(f["command"], utc(f["scheduled_for"]), f["outcome"]) for f in fired if f["kind"] == "escalate"] == [
        ("escalate", ESCALATION_MOMENT, "fired")
    ]
    assert receivable(api, "INV-KEPT")["state"] == "overdue_escalated"
    escalated = history(api, "INV-KEPT")[-1]
    assert (escalated["type"], escalated["actor"], utc(escalated["occurred_at"])) == (
        "Escalated", SCHEDULER_ACTOR, ESCALATION_MOMENT
    )


def test_a_receivable_parked_by_the_old_behaviour_is_freed_by_the_next_tick(sandbox):
    api = sandbox
    promised_400_in_follow_up(api, "INV-PARKED")
    advance(api, PAID_AT)
    pay_as_before_the_fix(api, "INV-PARKED", "400.00", date(2026, 4, 10), "B-OLD")
    parked = receivable(api, "INV-PARKED")
    assert (parked["state"], parked["balance"], parked["promise"]["paid_towards"]) == ("promised", "600.00", "400.00")

    fired = advance(api, PAID_AT + timedelta(minutes=1))
    assert [(f["kind"], f["command"], f["outcome"]) for f in fired] == [("promise_kept", "keep_promise", "fired")]
    assert utc(fired[0]["scheduled_for"]) == PAID_AT, "owed from the parked payment's instant"
    freed = history(api, "INV-PARKED")[-1]
    assert (freed["type"], freed["state_after"], freed["actor"]) == ("PromiseKept", "following_up", SCHEDULER_ACTOR)
    assert receivable(api, "INV-PARKED")["promise"] is None

    advance(api, utc("2026-07-10T02:00:00Z"))
    assert receivable(api, "INV-PARKED")["state"] == "overdue_escalated"


def test_a_parked_receivable_whose_escalation_moment_has_passed_escalates_at_the_same_tick(sandbox):
    api = sandbox
    promised_400_in_follow_up(api, "INV-LATE")
    advance(api, PAID_AT)
    pay_as_before_the_fix(api, "INV-LATE", "400.00", date(2026, 4, 10), "B-OLD")
    # The scheduler was down for months (the timers are there; nobody fired them).
    api.services.clock.advance(utc("2026-06-01T02:00:00Z"))
    fired = ok(api.as_("service").post("/admin/tick"))["fired"]
    assert [(f["command"], f["outcome"]) for f in fired] == [("keep_promise", "fired"), ("escalate", "fired")]
    assert [e["type"] for e in history(api, "INV-LATE")[-2:]] == ["PromiseKept", "Escalated"]
    assert receivable(api, "INV-LATE")["state"] == "overdue_escalated"


def test_a_kept_partial_promise_counts_once_in_the_kpis_and_the_credit_record_whichever_way_it_was_kept(sandbox):
    api = sandbox
    promised_400_in_follow_up(api, "INV-KEPT")
    promised_400_in_follow_up(api, "INV-PARKED")
    advance(api, PAID_AT)
    payment = {"amount": "400.00", "method": "bank_transfer", "paid_on": "2026-04-10", "reference": "B-1"}
    ok(api.as_("service").post("/receivables/INV-KEPT/record-payment", json=payment))
    pay_as_before_the_fix(api, "INV-PARKED", "400.00", date(2026, 4, 10), "B-OLD")
    advance(api, PAID_AT + timedelta(minutes=1))  # frees INV-PARKED: a second PromiseKept
    assert [e["type"] for e in history(api, "INV-PARKED")].count("PromiseKept") == 1

    def figures() -> tuple[Any, ...]:
        kpis = ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-04-01", "to": "2026-04-30"}))
        (cny,) = kpis["overall"]
        record = ok(api.as_("sales").get(f"/customers/{CUSTOMER['customer_id']}/credit-record"))
        return (
            (cny["promises_made"], cny["promises_kept"], cny["promises_broken"], cny["promise_kept_rate"]),
            (record["promises_made"], record["promises_kept"], record["promises_broken"]),
        )

    assert figures() == ((2, 2, 0, "1.0000"), (2, 2, 0))
    api.services.projections.rebuild("kpis")
    api.services.projections.rebuild("credit_records")
    assert figures() == ((2, 2, 0, "1.0000"), (2, 2, 0))
