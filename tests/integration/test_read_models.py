"""The read models over HTTP, on SQLite and PostgreSQL: aging as of any date,
the worklist, KPIs on hand-computed examples, readiness and read-your-writes."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest

from collections_es.application.clock import FixedClock

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice

LA_CUSTOMER = {**CUSTOMER, "customer_id": "C-LA-1", "name": "Pacific Trading LLC", "timezone": "America/Los_Angeles", "tier": "B"}


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pay(amount: str, reference: str, paid_on: str) -> dict[str, str]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": paid_on, "reference": reference}


def issue(api: Api, number: str, **fields: Any) -> None:
    ok(api.as_("service").post("/receivables", json=invoice(number, **fields)), 201)


def command(api: Api, who: str, number: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return ok(api.as_(who).post(f"/receivables/{number}/{name}", json=body))


def buckets(block: dict[str, Any]) -> dict[str, str]:
    """The non-empty buckets of a report block: bucket → balance."""
    return {b["bucket"]: b["balance"] for b in block["buckets"] if b["count"] or b["balance"] not in ("0.00", "0")}


def aging(api: Api, **query: Any) -> dict[str, Any]:
    return ok(api.as_("supervisor").get("/reports/aging", params=query))


# ---- aging -------------------------------------------------------------------------


@pytest.fixture
def aged(api: Api) -> Api:
    """A hand-built history (Shanghai customer in CNY, Los Angeles customer in USD):

    A  CNY 1000.00 issued 01-05 due 02-04, collector-1; paid 400.00 on 03-15 (recorded 04-10), 600.00 on 05-20
    B  CNY 2500.00 issued 02-01 due 03-03, collector-1; reassigned to collector-2 on 04-10
    C  CNY  800.00 issued 04-01 due 05-01, collector-2; disputed and adjusted to 500.00 on 05-10
    D  USD  300.00 issued 03-01 due 03-31, collector-1; written off on 06-01
    """
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-04-10T02:00Z")
    for customer in (CUSTOMER, LA_CUSTOMER):
        ok(api.as_("supervisor").post("/customers", json=customer), 201)
    issue(api, "A", amount="1000.00", issued_on="2026-01-05", due_on="2026-02-04")
    issue(api, "B", amount="2500.00", issued_on="2026-02-01", due_on="2026-03-03")
    issue(api, "D", amount="300.00", currency="USD", customer_id="C-LA-1", issued_on="2026-03-01", due_on="2026-03-31")
    command(api, "service", "A", "record-payment", pay("400.00", "A-1", "2026-03-15"))
    command(api, "supervisor", "B", "assign-collector", {"collector": "collector-2"})
    clock.at = at("2026-05-10T02:00Z")
    issue(api, "C", amount="800.00", issued_on="2026-04-01", due_on="2026-05-01", collector="collector-2")
    command(api, "collector", "C", "raise-dispute", {"reason": "two cartons arrived damaged"})
    command(api, "supervisor", "C", "resolve-dispute", {"resolution": "credit for the damaged cartons", "adjusted_amount": "500.00"})
    clock.at = at("2026-05-25T02:00Z")
    command(api, "service", "A", "record-payment", pay("600.00", "A-2", "2026-05-20"))
    clock.at = at("2026-06-01T16:00Z")  # 09:00 in Los Angeles
    command(api, "service", "D", "fall-due")
    command(api, "collector", "D", "escalate", {"reason": "no answer for two months"})
    command(api, "supervisor", "D", "request-write-off", {"reason": "the customer closed down"})
    command(api, "supervisor-2", "D", "approve-write-off", {"note": "agreed"})
    clock.at = at("2026-06-30T02:00Z")
    return api


@pytest.mark.parametrize(
    ("as_of", "cny", "usd"),
    [
        ("2026-01-04", None, None),
        ("2026-02-20", {"1-30": "1000.00", "current": "2500.00"}, None),
        ("2026-03-31", {"31-60": "600.00", "1-30": "2500.00"}, {"current": "300.00"}),
        ("2026-05-05", {"61-90": "3100.00", "1-30": "800.00"}, {"31-60": "300.00"}),
        ("2026-05-15", {"91-180": "600.00", "61-90": "2500.00", "1-30": "500.00"}, {"31-60": "300.00"}),
        ("2026-05-20", {"61-90": "2500.00", "1-30": "500.00"}, {"31-60": "300.00"}),
        ("2026-06-15", {"91-180": "2500.00", "31-60": "500.00"}, None),
    ],
)
def test_aging_as_of_a_past_date_shows_the_balances_of_that_day(aged, as_of, cny, usd):
    report = aging(aged, as_of=as_of)
    totals = {t["currency"]: t for t in report["totals"]}
    assert (buckets(totals["CNY"]) if "CNY" in totals else None) == cny
    assert (buckets(totals["USD"]) if "USD" in totals else None) == usd
    assert report["as_of"] == as_of


def test_aging_counts_the_open_receivables_in_each_bucket_and_totals_each_currency_apart(aged):
    report = aging(aged, as_of="2026-05-05")
    cny, usd = report["totals"]
    assert (cny["currency"], cny["count"], cny["balance"]) == ("CNY", 3, "3900.00")
    assert (usd["currency"], usd["count"], usd["balance"]) == ("USD", 1, "300.00")
    assert {b["bucket"]: b["count"] for b in cny["buckets"] if b["count"]} == {"61-90": 2, "1-30": 1}
    assert report["currency"] is None and report["buckets"] is None, "two currencies are never added into one set of buckets"
    only = aging(aged, as_of="2026-05-05", currency="USD")
    assert only["currency"] == "USD" and buckets({"buckets": only["buckets"]}) == {"31-60": "300.00"}


def test_aging_by_collector_follows_a_reassignment_from_the_day_it_was_made(aged):
    def by_collector(as_of: str) -> dict[tuple[str | None, str], dict[str, str]]:
        return {(g["key"], g["currency"]): buckets(g) for g in aging(aged, as_of=as_of, group_by="collector")["groups"]}

    assert by_collector("2026-04-01") == {
        ("collector-1", "CNY"): {"31-60": "600.00", "1-30": "2500.00"},
        ("collector-1", "USD"): {"1-30": "300.00"},
        ("collector-2", "CNY"): {"current": "800.00"},  # C, issued on 04-01 (recorded later)
    }
    assert by_collector("2026-04-15") == {
        ("collector-1", "CNY"): {"61-90": "600.00"},
        ("collector-1", "USD"): {"1-30": "300.00"},
        ("collector-2", "CNY"): {"31-60": "2500.00", "current": "800.00"},
    }


def test_aging_by_customer_groups_each_customers_balances(aged):
    groups = aging(aged, as_of="2026-05-15", group_by="customer")["groups"]
    assert [(g["key"], g["currency"], g["balance"], g["count"]) for g in groups] == [
        ("C-LA-1", "USD", "300.00", 1),
        ("C-SH-1", "CNY", "3600.00", 3),
    ]


def test_aging_defaults_to_today_and_downloads_as_csv(aged):
    assert aging(aged)["as_of"] == "2026-06-30"
    response = aged.as_("auditor").get("/reports/aging", params={"as_of": "2026-05-15", "group_by": "customer", "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["as_of", "customer", "currency", "current", "1-30", "31-60", "61-90", "91-180", "181-365", "365+", "total", "count", "charges"]
    assert rows[1:] == [
        ["2026-05-15", "C-LA-1", "USD", "0.00", "0.00", "300.00", "0.00", "0.00", "0.00", "0.00", "300.00", "1", "0.00"],
        ["2026-05-15", "C-SH-1", "CNY", "0.00", "500.00", "0.00", "2500.00", "600.00", "0.00", "0.00", "3600.00", "3", "0.00"],
        ["2026-05-15", "TOTAL", "CNY", "0.00", "500.00", "0.00", "2500.00", "600.00", "0.00", "0.00", "3600.00", "3", "0.00"],
        ["2026-05-15", "TOTAL", "USD", "0.00", "0.00", "300.00", "0.00", "0.00", "0.00", "0.00", "300.00", "1", "0.00"],
    ]


def test_the_aging_csv_by_currency_names_the_currency_column_once(aged):
    response = aged.as_("auditor").get("/reports/aging", params={"as_of": "2026-05-15", "format": "csv"})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["as_of", "currency", "current", "1-30", "31-60", "61-90", "91-180", "181-365", "365+", "total", "count", "charges"]
    assert [row[:2] for row in rows[1:]] == [["2026-05-15", "CNY"], ["2026-05-15", "USD"]]
    assert all(len(row) == len(rows[0]) for row in rows)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"as_of": "2026-02-30"}, "as_of"),
        ({"as_of": "1900-01-01"}, "as_of"),
        ({"group_by": "region"}, "group_by"),
        ({"currency": "cny"}, "currency"),
        ({"format": "xlsx"}, "format"),
    ],
)
def test_a_bad_aging_query_is_a_problem_naming_the_parameter(api, query, field):
    response = api.as_("supervisor").get("/reports/aging", params=query)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


def test_aging_is_not_for_sales_or_customer_service(api):
    for role in ("sales", "customer_service"):
        assert api.as_(role).get("/reports/aging").status_code == 403


# ---- worklist ------------------------------------------------------------------------


@pytest.fixture
def worked(api: Api) -> Api:
    """collector-1's book on 2026-06-15 (Shanghai), each item with one reason to act."""
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-05-20T02:00Z")
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    ok(api.as_("supervisor").post("/customers", json=LA_CUSTOMER), 201)
    issue(api, "SILENT", amount="10000.00", issued_on="2026-04-01", due_on="2026-05-01")
    issue(api, "PROMISE-SOON", amount="3000.00", issued_on="2026-04-01", due_on="2026-06-01")
    issue(api, "BROKEN", amount="400.00", issued_on="2026-04-01", due_on="2026-05-10", customer_id="C-LA-1")
    issue(api, "OLD", amount="900.00", issued_on="2026-01-01", due_on="2026-02-01")
    issue(api, "NOT-YET", amount="5000.00", issued_on="2026-05-01", due_on="2026-07-01")
    issue(api, "SOMEONE-ELSE", amount="7000.00", issued_on="2026-04-01", due_on="2026-05-01", collector="collector-2")
    for number in ("SILENT", "OLD", "BROKEN"):
        command(api, "service", number, "fall-due")
    command(api, "collector", "BROKEN", "promise-to-pay", {"amount": "400.00", "promised_on": "2026-05-25"})
    clock.at = at("2026-06-01T02:00Z")
    command(api, "service", "PROMISE-SOON", "fall-due")
    command(api, "collector", "PROMISE-SOON", "promise-to-pay", {"amount": "3000.00", "promised_on": "2026-06-16"})
    command(api, "collector", "BROKEN", "break-promise", {"reason": "nothing came"})
    clock.at = at("2026-06-05T02:00Z")
    command(api, "collector", "SILENT", "record-contact", {"channel": "phone", "outcome": "no_answer", "note": "rang twice"})
    clock.at = at("2026-06-12T17:00Z")  # Friday 10:00 in Los Angeles, inside its contact window
    command(api, "collector", "BROKEN", "record-contact", {"channel": "email", "outcome": "no_answer", "note": "sent a reminder"})
    clock.at = at("2026-06-15T02:00Z")
    return api


def test_the_worklist_lists_a_collectors_items_highest_priority_first_with_their_reasons(worked):
    listing = ok(worked.as_("collector").get("/worklist"))
    assert listing["collector"] == "collector-1"
    items = {i["invoice_number"]: i for i in listing["items"]}
    assert [i["invoice_number"] for i in listing["items"]] == ["OLD", "PROMISE-SOON", "SILENT", "BROKEN"]
    assert items["OLD"]["reasons"] == ["legal referral suggested", "134 days past due, no contact yet"]
    assert items["BROKEN"]["reasons"] == ["broken promise", "35 days past due"]  # in Los Angeles it is still 06-14
    assert items["SILENT"]["reasons"] == ["45 days past due, no contact in 10 days"]
    # the promise was the last contact
    assert items["PROMISE-SOON"]["reasons"] == ["promise due tomorrow", "14 days past due, no contact in 14 days"]
    assert items["SILENT"]["reason"] == items["SILENT"]["reasons"][0]
    # score = days/3 + 20 if silent 7+ days + 10·log10(balance) + tier (A 30, B 15) + 40 per broken promise
    #         + 25 promise due today/tomorrow + 50 legal referral suggested (docs/worklist.md)
    assert items["SILENT"]["priority"] == pytest.approx(45 / 3 + 20 + 40 + 30, abs=0.01)
    assert items["OLD"]["priority"] == pytest.approx(134 / 3 + 20 + 50 + 10 * 2.954243 + 30, abs=0.01)
    assert items["BROKEN"]["priority"] == pytest.approx(35 / 3 + 40 + 10 * 2.602060 + 15, abs=0.01)
    assert items["PROMISE-SOON"]["priority"] == pytest.approx(25 + 14 / 3 + 20 + 10 * 3.477121 + 30, abs=0.01)
    assert (items["SILENT"]["balance"], items["SILENT"]["days_past_due"], items["SILENT"]["tier"]) == ("10000.00", 45, "A")


def test_the_worklist_dates_a_contact_by_when_it_took_place_not_when_it_was_logged(worked):
    """A call made on 06-03 and logged on 06-15 leaves the customer silent for 12 days."""
    command(worked, "collector", "OLD", "record-contact", {
        "channel": "phone", "outcome": "no_answer", "note": "rang on the 3rd", "occurred_at": "2026-06-03T02:00:00Z",
    })
    items = {i["invoice_number"]: i for i in ok(worked.as_("collector").get("/worklist"))["items"]}
    assert items["OLD"]["reasons"] == ["legal referral suggested", "134 days past due, no contact in 12 days"]


def test_the_worklist_offers_the_commands_the_state_allows_and_the_callers_role_may_send(worked):
    collector = {i["invoice_number"]: i for i in ok(worked.as_("collector").get("/worklist"))["items"]}
    supervisor = {i["invoice_number"]: i for i in ok(worked.as_("supervisor").get("/worklist", params={"collector": "collector-1"}))["items"]}
    assert "escalate" in collector["SILENT"]["allowed_commands"]
    assert "assign_collector" not in collector["SILENT"]["allowed_commands"]
    assert "assign_collector" in supervisor["SILENT"]["allowed_commands"]
    # promised allows record_contact, record_payment, raise_dispute, resolve_dispute, assign_collector,
    # warn_limitation, break_promise, keep_promise, accrue_charges, waive_charges, approve_charges_waiver,
    # remind_installment, replan, hold, release_hold, the complaints and decline_installment_proposal
    # (a customer's proposal may outlive a promise); a collector may send eight of them
    assert collector["PROMISE-SOON"]["allowed_commands"] == [
        "record_contact", "record_payment", "raise_dispute", "accrue_charges", "decline_installment_proposal",
        "break_promise", "keep_promise", "remind_installment",
    ]


def test_a_supervisor_sees_every_collectors_items_and_a_legal_clerk_one_collectors(worked):
    everyone = [i["invoice_number"] for i in ok(worked.as_("supervisor").get("/worklist"))["items"]]
    assert set(everyone) == {"OLD", "BROKEN", "SILENT", "PROMISE-SOON", "SOMEONE-ELSE"}
    assert "NOT-YET" not in everyone
    others = ok(worked.as_("legal").get("/worklist", params={"collector": "collector-2"}))["items"]
    assert [i["invoice_number"] for i in others] == ["SOMEONE-ELSE"]
    assert worked.as_("auditor").get("/worklist").status_code == 403


def test_a_settled_or_disputed_item_leaves_the_top_of_the_worklist(worked):
    command(worked, "service", "OLD", "record-payment", pay("900.00", "OLD-1", "2026-06-15"))
    command(worked, "collector", "SILENT", "raise-dispute", {"reason": "price disagreement"})
    items = {i["invoice_number"]: i for i in ok(worked.as_("collector").get("/worklist"))["items"]}
    assert "OLD" not in items
    assert items["SILENT"]["priority"] == pytest.approx((45 / 3 + 20 + 40 + 30) / 2, abs=0.01)
    assert items["SILENT"]["reasons"][-1] == "disputed: waiting on its resolution"


# ---- KPIs ----------------------------------------------------------------------------


def test_kpis_over_a_month_match_the_hand_computed_figures(api):
    """March 2026, CNY (docs/kpis.md has the formulas):

    R1 1000.00 issued 02-10 due 03-12 (collector-1): promised 03-13 for 03-15, paid in full 03-15 → kept, settled
       33 days after issue, 3 days late.
    R2 2000.00 issued 03-05 due 04-04 (collector-1): open, current at the end.
    R3  500.00 issued 03-10 due 03-20 (collector-1): promised 03-21 300.00 for 03-24, 200.00 paid 03-25, broken 03-28.
    R4  700.00 issued 03-01 due 03-31 (collector-2): open, current at the end.

    receivables at start (02-28) 1000; credit sales 3200; at end 3000, of which current 2700; 31 days.
    DSO = 3000 / 3200 × 31 = 29.06; CEI = (1000 + 3200 − 3000) / (1000 + 3200 − 2700) × 100 = 80.0;
    BPDSO = 2700 / 3200 × 31 = 26.16 → 26.2; ADD = 29.1 − 26.2 = 2.9; countback: March's sales (3200)
    cover the 3000 open: 31 × 3000 / 3200 = 29.06 → 29.1.
    promise-kept rate = 1 / (1 + 1); average days to collect 33; collected 1200.
    """
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-02-10T02:00Z")
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    issue(api, "R1", amount="1000.00", issued_on="2026-02-10", due_on="2026-03-12")
    clock.at = at("2026-03-13T02:00Z")
    issue(api, "R2", amount="2000.00", issued_on="2026-03-05", due_on="2026-04-04")
    issue(api, "R3", amount="500.00", issued_on="2026-03-10", due_on="2026-03-20")
    issue(api, "R4", amount="700.00", issued_on="2026-03-01", due_on="2026-03-31", collector="collector-2")
    command(api, "service", "R1", "fall-due")
    command(api, "collector", "R1", "promise-to-pay", {"amount": "1000.00", "promised_on": "2026-03-15"})
    clock.at = at("2026-03-15T02:00Z")
    command(api, "service", "R1", "record-payment", pay("1000.00", "R1-1", "2026-03-15"))
    clock.at = at("2026-03-21T02:00Z")
    command(api, "service", "R3", "fall-due")
    command(api, "collector", "R3", "promise-to-pay", {"amount": "300.00", "promised_on": "2026-03-24"})
    clock.at = at("2026-03-25T02:00Z")
    command(api, "service", "R3", "record-payment", pay("200.00", "R3-1", "2026-03-25"))
    clock.at = at("2026-03-28T02:00Z")
    command(api, "collector", "R3", "break-promise", {"reason": "only 200 of 300 came"})
    clock.at = at("2026-04-02T02:00Z")

    report = ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-03-01", "to": "2026-03-31"}))
    assert (report["from"], report["to"], report["days"]) == ("2026-03-01", "2026-03-31", 31)
    [overall] = report["overall"]
    assert overall == {
        "currency": "CNY",
        "receivables_at_start": "1000.00",
        "receivables_at_end": "3000.00",
        "current_at_end": "2700.00",
        "credit_sales": "3200.00",
        "collected": "1200.00",
        "recovered": "0.00",
        "written_off": "0.00",
        "charges_accrued": "0.00",  # the policy charges nothing (docs/charges.md)
        "charges_collected": "0.00",
        "charges_waived": "0.00",
        "charges_written_off": "0.00",
        "dso": "29.1",
        "best_possible_dso": "26.2",
        "average_days_delinquent": "2.9",
        "countback_dso": "29.1",
        "cei": "80.0",
        "promises_made": 2,
        "promises_kept": 1,
        "promises_broken": 1,
        "promise_kept_rate": "0.5000",
        "settled": 1,
        "average_days_to_collect": "33.0",
        "average_days_late": "3.0",
    }
    per = {c["collector"]: c for c in report["collectors"]}
    assert set(per) == {"collector-1", "collector-2"}
    one, two = per["collector-1"], per["collector-2"]
    # collector-1: start 1000, sales 2500, end 2300 (current 2000): DSO 2300/2500·31 = 28.52, CEI 1200/1500
    assert (one["dso"], one["cei"], one["collected"], one["promise_kept_rate"]) == ("28.5", "80.0", "1200.00", "0.5000")
    # BPDSO 2000/2500·31 = 24.8, ADD 28.5 − 24.8 = 3.7, countback 31·2300/2500 = 28.52
    assert (one["best_possible_dso"], one["average_days_delinquent"], one["countback_dso"]) == ("24.8", "3.7", "28.5")
    # collector-2: nothing collected and nothing yet due: CEI has no denominator
    assert (two["dso"], two["cei"], two["collected"], two["promise_kept_rate"]) == ("31.0", None, "0.00", None)
    # all 700 current: BPDSO = DSO = 31.0, ADD 0.0; March's 700 of sales exactly used up: 31.0
    assert (two["best_possible_dso"], two["average_days_delinquent"], two["countback_dso"]) == ("31.0", "0.0", "31.0")
    only = ok(api.as_("auditor").get("/reports/kpis", params={"from": "2026-03-01", "to": "2026-03-31", "collector": "collector-2"}))
    assert [c["collector"] for c in only["collectors"]] == ["collector-2"]


# (number, issued_on, due_on, amount, collector, payments as (paid_on, amount))
GENERATED_HISTORY = [
    ("G1", "2026-01-10", "2026-02-09", "600.00", "collector-1", []),
    ("G2", "2026-02-12", "2026-03-14", "900.00", "collector-1", [("2026-03-10", "900.00")]),
    ("G3", "2026-03-03", "2026-04-02", "1200.00", "collector-1", [("2026-04-20", "400.00")]),
    ("G4", "2026-04-08", "2026-05-08", "1500.00", "collector-1", []),
    ("G5", "2026-04-25", "2026-05-25", "1000.00", "collector-2", []),
    ("G6", "2026-05-06", "2026-06-05", "2000.00", "collector-1", []),
    ("G7", "2026-05-18", "2026-06-17", "700.00", "collector-1", [("2026-05-19", "700.00")]),
    ("G8", "2026-05-25", "2026-06-24", "5000.00", "collector-1", []),  # after `to`: neither sales nor receivables
]


def test_best_possible_dso_add_and_countback_over_a_period_of_part_months_match_the_hand_computed_figures(api):
    """Period 2026-04-01..2026-05-20 (30 + 20 = 50 days, not whole months), CNY, from GENERATED_HISTORY:

    receivables at start (03-31): G1 600 + G3 1200 = 1800 (G2 paid 03-10)
    credit sales (04-01..05-20): G4 1500 + G5 1000 + G6 2000 + G7 700 = 5200
    receivables at end (05-20): G1 600 + G3 800 + G4 1500 + G5 1000 + G6 2000 = 5900
    current at end (due on or after 05-20): G5 1000 + G6 2000 = 3000
    DSO = 5900 / 5200 × 50 = 56.73 → 56.7;  BPDSO = 3000 / 5200 × 50 = 28.85 → 28.8;  ADD = 56.7 − 28.8 = 27.9
    CEI = (1800 + 5200 − 5900) / (1800 + 5200 − 3000) × 100 = 1100 / 4000 × 100 = 27.5
    countback from 05-20 by calendar months, the latest cut at `to`:
      May 1–20 (20 days) sales 2700 (G6 + G7; G8 is after `to`): 5900 − 2700 = 3200, 20 days
      April (30 days) sales 2500: 3200 − 2500 = 700, 50 days
      March (31 days) sales 1200 > 700: 50 + 31 × 700 / 1200 = 50 + 18.08 = 68.08 → 68.1
    collector-1: start 1800, sales 4200, end 4900, current 2000: DSO 58.33 → 58.3, BPDSO 23.81 → 23.8,
      ADD 34.5, CEI 1100 / 4000 = 27.5; countback: May 2700 → 2200 left (20), April 1500 → 700 left (50),
      March 31 × 700 / 1200 → 68.1
    collector-2: G5 only: sales 1000, end 1000 all current: DSO = BPDSO = 50.0, ADD 0.0, CEI null;
      countback: May has no sales of theirs (all 20 days counted, 1000 left), April 1000 used up: 50.0
    """
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-06-01T02:00Z")
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    for number, issued_on, due_on, amount, collector, payments in GENERATED_HISTORY:
        issue(api, number, amount=amount, issued_on=issued_on, due_on=due_on, collector=collector)
        for n, (paid_on, paid) in enumerate(payments, 1):
            command(api, "service", number, "record-payment", pay(paid, f"{number}-{n}", paid_on))

    report = ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-04-01", "to": "2026-05-20"}))
    assert report["days"] == 50
    [overall] = report["overall"]
    figures = ("receivables_at_start", "credit_sales", "receivables_at_end", "current_at_end", "collected")
    assert [overall[k] for k in figures] == ["1800.00", "5200.00", "5900.00", "3000.00", "1100.00"]
    kpi = ("dso", "best_possible_dso", "average_days_delinquent", "countback_dso", "cei")
    assert [overall[k] for k in kpi] == ["56.7", "28.8", "27.9", "68.1", "27.5"]
    per = {c["collector"]: c for c in report["collectors"]}
    assert [per["collector-1"][k] for k in kpi] == ["58.3", "23.8", "34.5", "68.1", "27.5"]
    assert [per["collector-2"][k] for k in kpi] == ["50.0", "50.0", "0.0", "50.0", None]


def test_without_credit_sales_in_the_period_bpdso_and_add_are_null_and_the_countback_still_counts(api):
    """April 2026 with nothing issued in it: 600 open from G1 (issued 01-10), the only sale on record.
    Countback from 04-30: April 0 (30 days), March 0 (31), February 0 (28), January 600 used up (31) = 120.0.
    With G0 too (400 issued 2025-12-31, open): 1000 open; January's 600 leaves 400 (120 days),
    December's 400 is used up (31): 151.0."""
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-05-02T02:00Z")
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    issue(api, "G1", amount="600.00", issued_on="2026-01-10", due_on="2026-02-09")
    [april] = ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-04-01", "to": "2026-04-30"}))["overall"]
    kpi = ("dso", "best_possible_dso", "average_days_delinquent", "countback_dso")
    assert [april[k] for k in kpi] == [None, None, None, "120.0"]
    issue(api, "G0", amount="400.00", issued_on="2025-12-31", due_on="2026-01-30")
    [april] = ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-04-01", "to": "2026-04-30"}))["overall"]
    assert april["countback_dso"] == "151.0"


def test_kpis_without_dates_count_a_promise_made_a_moment_ago_where_the_customers_day_is_already_tomorrow(api):
    """The company keeps UTC (COLLECTIONS_TIMEZONE's default); the customer is in Auckland, 13 hours
    ahead. At 20:00 UTC on 10 March it is 09:00 on 11 March there: the promise made then is a fact
    of the company's 10 March, the default period's last day."""
    auckland = {**CUSTOMER, "customer_id": "C-AKL-1", "timezone": "Pacific/Auckland"}
    clock: FixedClock = api.services.clock  # type: ignore[assignment]
    clock.at = at("2026-02-01T01:00Z")
    ok(api.as_("supervisor").post("/customers", json=auckland), 201)
    issue(api, "AKL-1", customer_id="C-AKL-1", amount="800.00", issued_on="2026-02-01", due_on="2026-03-01")
    clock.at = at("2026-03-10T20:00Z")
    command(api, "service", "AKL-1", "fall-due")
    command(api, "collector", "AKL-1", "promise-to-pay", {"amount": "800.00", "promised_on": "2026-03-20"})

    report = ok(api.as_("supervisor").get("/reports/kpis"))
    assert (report["timezone"], report["today"], report["to"]) == ("UTC", "2026-03-10", "2026-03-10")
    assert [o["promises_made"] for o in report["overall"]] == [1]
    assert ok(api.as_("supervisor").get("/reports/kpis", params={"from": "2026-03-11", "to": "2026-03-11"}))["overall"][0][
        "promises_made"
    ] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [({"from": "2026-04-01", "to": "2026-03-01"}, "from"), ({"from": "1999-01-01", "to": "2026-03-01"}, "from"), ({"to": "nope"}, "to")],
)
def test_a_bad_kpi_period_is_a_problem_naming_the_parameter(api, query, field):
    response = api.as_("supervisor").get("/reports/kpis", params=query)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_kpis_are_for_supervisors_and_auditors_only(api):
    assert api.as_("collector").get("/reports/kpis").status_code == 403
    assert api.as_("auditor").get("/reports/kpis").status_code == 200


# ---- freshness --------------------------------------------------------------------------


def test_a_read_right_after_a_command_sees_that_command(api):
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    api.services.clock.at = at("2026-04-20T02:00Z")  # type: ignore[attr-defined]
    issue(api, "FRESH", amount="100.00")
    assert aging(api)["totals"][0]["balance"] == "100.00"
    command(api, "service", "FRESH", "record-payment", pay("40.00", "F-1", "2026-04-20"))
    assert aging(api)["totals"][0]["balance"] == "60.00"
    assert [i["balance"] for i in ok(api.as_("collector").get("/worklist"))["items"]] == ["60.00"]
    assert ok(api.as_("collector").get("/receivables"))["items"][0]["balance"] == "60.00"


def test_with_external_projection_workers_a_read_waits_for_them_and_says_how_far_behind_it_is(database_url):
    services = make_services(
        database_url, FixedClock(START), COLLECTIONS_PROJECTIONS="external", COLLECTIONS_READ_WAIT_SECONDS=0.1
    )
    try:
        api = Api(services)
        ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
        issue(api, "WAITS", amount="100.00")
        stale = api.as_("supervisor").get("/reports/aging")
        assert stale.status_code == 200 and int(stale.headers["X-Projection-Lag"]) >= 2
        assert stale.json()["totals"] == []
        for view in ("/customers", "/customers/C-SH-1/contacts-log", "/notifications", "/receivables"):
            behind = api.as_("supervisor").get(view)
            assert behind.status_code == 200 and int(behind.headers["X-Projection-Lag"]) >= 1, view
        ready = ok(api.as_("auditor").get("/readyz"))
        assert ready["projections"]["aging"]["lag"] >= 2
        services.projections.catch_up()  # what `collections-es project` does
        fresh = api.as_("supervisor").get("/reports/aging")
        assert "X-Projection-Lag" not in fresh.headers
        assert fresh.json()["totals"][0]["balance"] == "100.00"
        assert all(p["lag"] == 0 for p in ok(api.as_("auditor").get("/readyz"))["projections"].values())
    finally:
        services.close()


@pytest.mark.postgres
def test_on_postgresql_one_follower_per_projection_is_elected_and_another_takes_over_when_it_goes(pg_url):
    first = make_services(pg_url, FixedClock(START))
    second = make_services(pg_url, FixedClock(START))
    try:
        assert set(first.projections.leadership.acquire(["aging", "kpis"])) == {"aging", "kpis"}
        assert second.projections.leadership.acquire(["aging", "kpis", "worklist"]) == ["worklist"]
        first.projections.leadership.release()  # the worker stops (or its connection dies)
        assert set(second.projections.leadership.acquire(["aging", "kpis", "worklist"])) == {"aging", "kpis", "worklist"}
        assert first.projections.leadership.acquire(["aging"]) == []
    finally:
        first.close()
        second.close()


def test_projections_follow_in_the_background_until_stopped(database_url):
    import threading

    services = make_services(database_url, FixedClock(START), COLLECTIONS_PROJECTIONS="external")
    try:
        api = Api(services)
        ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
        issue(api, "BACKGROUND", amount="100.00")
        stop = threading.Event()
        worker = threading.Thread(target=services.projections.follow, args=(stop,), kwargs={"poll": 0.01})
        worker.start()
        assert services.projections.wait_until_current(list(services.projections.projections), apply=False, timeout=20) == 0
        stop.set()
        worker.join(10)
        assert not worker.is_alive()
        assert services.projections.leadership.held() == set(), "a stopped follower lets go of its projections"
    finally:
        services.close()


def test_aging_dates_are_exact_days(aged):
    """Bucket edges: 30 days past due is 1-30, 31 is 31-60 (A is due 02-04); the due day itself is current."""
    assert buckets(aging(aged, as_of="2026-03-03")["totals"][0]) == {"1-30": "1000.00", "current": "2500.00"}
    assert buckets(aging(aged, as_of="2026-03-06")["totals"][0]) == {"1-30": "3500.00"}
    assert buckets(aging(aged, as_of="2026-03-07")["totals"][0]) == {"31-60": "1000.00", "1-30": "2500.00"}


def test_a_customers_new_tier_changes_the_priority_of_their_items(worked):
    before = {i["invoice_number"]: i for i in ok(worked.as_("collector").get("/worklist"))["items"]}
    assert ok(worked.as_("sales").patch("/customers/C-SH-1", json={"tier": "B"}))["tier"] == "B"
    after = {i["invoice_number"]: i for i in ok(worked.as_("collector").get("/worklist"))["items"]}
    assert (before["SILENT"]["tier"], after["SILENT"]["tier"]) == ("A", "B")
    assert after["SILENT"]["priority"] == pytest.approx(before["SILENT"]["priority"] - 30 + 15, abs=0.01)
    assert after["BROKEN"]["priority"] == before["BROKEN"]["priority"]  # another customer
