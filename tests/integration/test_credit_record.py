"""The credit record after a hand-built history: a receivable settled on time, one settled
late, a promise kept, a promise broken, a write-off and a recovery; exposure against the
credit limit, the credit hold, the derived rating, and a rebuild that gives the same."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from collections_es.application.service import Request
from collections_es.domain.trail import Actor
from projections.credit import credit_amounts

from .conftest import CUSTOMER, Api, invoice


def at(api: Api, instant: str) -> None:
    api.services.clock.at = datetime.fromisoformat(instant).astimezone(UTC)


def do(api: Api, ref: str, who: str, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.as_(who).post(f"/receivables/{ref}/{command}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def pay(api: Api, ref: str, amount: str, paid_on: str, reference: str, command: str = "record_payment") -> None:
    do(api, ref, "service", command.replace("_", "-"),
       {"amount": amount, "method": "bank_transfer", "paid_on": paid_on, "reference": reference})


def credit(api: Api, who: str = "sales") -> dict[str, Any]:
    response = api.as_(who).get("/customers/C-SH-1/credit-record")
    assert response.status_code == 200, response.text
    return response.json()


def build_history(api: Api) -> None:
    """Five receivables of CNY 1,200.50, all due Wednesday 1 April 2026 (Shanghai)."""
    customer = CUSTOMER | {"credit_limit": {"amount": "2000.00", "currency": "CNY"}}
    assert api.as_("supervisor").post("/customers", json=customer).status_code == 201
    for n in range(1, 6):
        assert api.as_("service").post("/receivables", json=invoice(f"INV-{n}")).status_code == 201
    at(api, "2026-03-31T02:00:00Z")
    pay(api, "INV-1", "1200.50", "2026-03-31", "B-1")  # settled a day early: on time
    at(api, "2026-04-02T02:00:00Z")
    for ref in ("INV-3", "INV-4", "INV-5"):
        do(api, ref, "service", "fall-due")
        do(api, ref, "service", "start-follow-up")
    do(api, "INV-3", "collector", "promise-to-pay", {"amount": "500.00", "promised_on": "2026-04-05"})
    do(api, "INV-4", "collector", "promise-to-pay", {"amount": "600.00", "promised_on": "2026-04-06"})
    at(api, "2026-04-06T02:00:00Z")
    pay(api, "INV-4", "600.00", "2026-04-06", "B-4")  # promise kept, balance 600.50 still open
    at(api, "2026-04-09T02:00:00Z")
    do(api, "INV-3", "service", "break-promise", {"reason": "nothing paid by 5 April plus grace"})
    at(api, "2026-04-11T02:00:00Z")
    pay(api, "INV-2", "1200.50", "2026-04-11", "B-2")  # settled 10 days late
    do(api, "INV-5", "collector", "escalate", {"reason": "no answer for weeks"})
    do(api, "INV-5", "supervisor", "request-write-off", {"reason": "customer insolvent"})
    do(api, "INV-5", "supervisor-2", "approve-write-off", {"note": "approved"})
    at(api, "2026-05-04T02:00:00Z")
    pay(api, "INV-5", "200.00", "2026-05-04", "R-5", command="record_recovery")


def test_the_credit_record_counts_settlements_promises_write_offs_and_recoveries(api: Api) -> None:
    build_history(api)
    record = credit(api)
    assert record["settled_on_time"] == 1
    assert record["settled_late"] == 1
    assert record["average_days_late"] == "5.0"  # (0 + 10) / 2 settled
    assert (record["promises_made"], record["promises_kept"], record["promises_broken"]) == (2, 1, 1)
    # Open: INV-3 (1,200.50, promise broken) and INV-4 (600.50 after the kept promise).
    assert record["by_currency"] == [
        {"currency": "CNY", "written_off": "1200.50", "recovered": "200.00", "exposure": "1801.00"}
    ]
    assert record["credit_limit"] == {"amount": "2000.00", "currency": "CNY"}
    assert record["exposure_in_limit_currency"] == "1801.00"
    assert record["over_credit_limit"] is False
    assert record["last_write_off_on"] == "2026-04-11"
    assert record["recent_write_off"] is True
    assert record["credit_hold"] is True and record["credit_hold_reasons"] == ["recent_write_off"]
    assert record["rating"] == "D"  # 1,000.50 written off is not recovered


def test_the_hold_for_a_write_off_ends_after_the_window_and_a_lower_limit_brings_a_hold_for_exposure(api: Api) -> None:
    build_history(api)
    at(api, "2027-04-12T02:00:00Z")  # more than 365 days after 11 April 2026
    record = credit(api)
    assert record["recent_write_off"] is False and record["credit_hold"] is False
    response = api.as_("sales").patch("/customers/C-SH-1", json={"credit_limit": {"amount": "1800", "currency": "CNY"}})
    assert response.status_code == 200, response.text
    record = credit(api)
    assert record["over_credit_limit"] is True
    assert record["credit_hold_reasons"] == ["over_credit_limit"]
    held = api.as_("sales").get("/customers", params={"credit_hold": "true"}).json()
    assert [c["customer_id"] for c in held["items"]] == ["C-SH-1"]
    assert api.as_("sales").get("/customers", params={"credit_hold": "false"}).json()["items"] == []


def test_the_rating_follows_the_documented_rule(api: Api) -> None:
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert credit(api)["rating"] == "unrated"
    for n in (1, 2):
        assert api.as_("service").post("/receivables", json=invoice(f"INV-{n}")).status_code == 201
    at(api, "2026-03-31T02:00:00Z")
    pay(api, "INV-1", "1200.50", "2026-03-31", "B-1")
    assert credit(api)["rating"] == "A"
    at(api, "2026-04-03T02:00:00Z")
    pay(api, "INV-2", "1200.50", "2026-04-03", "B-2")
    record = credit(api)
    assert (record["settled_late"], record["rating"]) == (1, "B")
    assert "average days late > 30" in record["rating_rule"]


def test_the_credit_record_rebuilds_from_the_log_to_the_same_figures(api: Api) -> None:
    build_history(api)
    before = credit(api)
    api.services.projections.rebuild("credit_records")
    assert credit(api) == before


def test_a_credit_record_of_an_unknown_customer_is_404(api: Api) -> None:
    assert api.as_("sales").get("/customers/C-NOBODY/credit-record").status_code == 404


def test_a_receivable_issued_and_written_off_in_one_projection_batch_adds_to_the_customers_existing_amounts(services):
    """The credit record applies batches in bulk: a write-off in the same batch as its receivable's
    issue must add to the customer's existing written-off row, not insert a second one."""
    app, clock = services.app, services.clock
    erp, boss, second = Actor("erp", "service"), Actor("boss", "supervisor"), Actor("boss-2", "supervisor")
    app.register_customer(Request(erp), customer_id="C-BULK", name="Bulk Ltd", timezone="Asia/Shanghai", tier="B",
                          preferred_channel="email", contacts={"email": "ap@bulk.example.com"})

    def written_off(number: str) -> None:
        rid = app.issue_receivable(Request(erp), invoice_number=number, customer_id="C-BULK", amount="100.00",
                                   currency="CNY", issued_on=date(2026, 1, 5), due_on=date(2026, 2, 4)).resource.id
        app.execute(Request(erp), rid, "fall_due")
        app.execute(Request(erp), rid, "escalate", reason="silent")
        app.execute(Request(boss), rid, "request_write_off", reason="gone")
        app.execute(Request(second), rid, "approve_write_off")

    written_off("INV-BULK-1")
    services.projections.catch_up()
    clock.at = clock.at + timedelta(days=1)
    written_off("INV-BULK-2")
    services.projections.catch_up()  # issue and write-off of INV-BULK-2 in one batch
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(credit_amounts.c.currency, credit_amounts.c.written_off)).all()
    assert [(cur, f"{amount:.2f}") for cur, amount in rows] == [("CNY", "200.00")]
