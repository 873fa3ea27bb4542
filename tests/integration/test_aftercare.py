"""After collection over HTTP (issue 17, docs/aftercare.md), on SQLite and PostgreSQL:
revisits owed after a settlement on the worklist and judged when not made in time;
complaints attributed to the collector of the contact they concern; the reasons for
non-payment report equal to a count made here from the events of a generated quarter.

The customer is in Shanghai (UTC+8); the invoice is due Wednesday 2026-04-01.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from collections_es.domain.aftercare import classify_reason
from collections_es.domain.receivable import Receivable

from .conftest import CUSTOMER, invoice
from .projection_history import describe_differences, projection_tables, table_contents

# The report's and the refusals' SQL is plain: these run on SQLite only (the suite's budget).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PAID_AT = datetime(2026, 4, 10, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai: settled on 2026-04-10
REVISITS = {"tiers": ["A"], "after_days": 30, "within_days": 7}  # owed 2026-05-10, made by the end of 2026-05-17


def at(api, when: datetime) -> None:
    api.services.clock.at = when


def ok(response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


def adopt(api, version: str, **changes: Any) -> None:
    document = api.as_("supervisor").get("/policy").json()["policy"]
    document.update(version=version, **changes)
    ok(api.client.put("/policy", json=document, headers=api.headers("supervisor")))


def issue(api, number: str, customer: str = CUSTOMER["customer_id"], **overrides: Any) -> str:
    at(api, datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    return ok(api.as_("service").post("/receivables", json=invoice(number, customer_id=customer, **overrides)), 201)["id"]


def settle(api, rid: str, when: datetime = PAID_AT, amount: str = "1200.50") -> None:
    at(api, when)
    body = {"amount": amount, "method": "bank_transfer", "paid_on": when.date().isoformat(), "reference": f"P-{rid[:8]}"}
    assert ok(api.as_("service").post(f"/receivables/{rid}/record-payment", json=body))["state"] == "settled"


def rebuilt_equals_live(api, *names: str) -> None:
    """Each read model rebuilt from the log equals the one kept up to date (small batches)."""
    runner = api.services.projections
    runner.catch_up()
    tables = [t for t in projection_tables(runner) if t.name.startswith(("af_", "cmp_"))]
    live = table_contents(api.services.engine, tables)
    for name in names:
        runner.rebuild(name, batch_size=7)
    rebuilt = table_contents(api.services.engine, tables)
    assert live == rebuilt, describe_differences(live, rebuilt)


def worklist_revisits(api) -> list[str]:
    return [r["invoice_number"] for r in ok(api.as_("collector").get("/worklist"))["revisits"]]


def revisit_findings(api) -> list[dict[str, Any]]:
    return ok(api.as_("supervisor").get("/compliance/findings", params={"rule_id": "revisit.not_made_in_time"}))


def test_a_revisit_owed_after_settlement_is_on_the_worklist_on_its_day_and_a_finding_when_not_made(api):
    ok(api.as_("service").post("/customers", json=CUSTOMER), 201)
    ok(api.as_("service").post("/customers", json={**CUSTOMER, "customer_id": "C-B", "tier": "B"}), 201)
    adopt(api, "2026.2", revisits=REVISITS)
    visited, forgotten = issue(api, "INV-R-1"), issue(api, "INV-R-2")
    tier_b = issue(api, "INV-R-3", customer="C-B")
    for rid in (visited, tier_b):
        settle(api, rid)

    at(api, datetime(2026, 5, 9, 15, 0, tzinfo=UTC))  # 2026-05-09 23:00 in Shanghai: not yet owed
    assert worklist_revisits(api) == []
    at(api, datetime(2026, 5, 9, 16, 0, tzinfo=UTC))  # midnight into 2026-05-10 in Shanghai: owed today
    assert worklist_revisits(api) == ["INV-R-1"]  # tier B is owed none
    due = ok(api.as_("collector").get("/worklist"))["revisits"][0]
    assert (due["owed_on"], due["last_day"], due["collector"]) == ("2026-05-10", "2026-05-17", "collector-1")

    at(api, datetime(2026, 5, 11, 3, 0, tzinfo=UTC))
    revisit = {"channel": "phone", "feedback": "满意，希望延长账期", "satisfaction": 4, "needs": "60-day terms"}
    customer = ok(api.as_("collector").post(f"/customers/{CUSTOMER['customer_id']}/record-revisit", json=revisit))
    assert [(r["satisfaction"], r["by"], r["needs"]) for r in customer["revisits"]] == [(4, "collector-1", "60-day terms")]
    assert worklist_revisits(api) == []

    # The second receivable is settled after that revisit: it owes one of its own, which nobody makes.
    settle(api, forgotten, datetime(2026, 5, 12, 2, 0, tzinfo=UTC))  # owed 2026-06-11, by the end of 2026-06-18
    at(api, datetime(2026, 6, 18, 15, 59, tzinfo=UTC))  # 23:59 on its last day
    assert worklist_revisits(api) == ["INV-R-2"] and revisit_findings(api) == []
    at(api, datetime(2026, 6, 18, 16, 0, tzinfo=UTC))
    found = revisit_findings(api)
    assert [(f["invoice_number"], f["collector"]) for f in found] == [("INV-R-2", "collector-1")]
    assert found[0]["occurred_at"].startswith("2026-06-18T16:00:00")
    # The collectors report counts the finding and the satisfaction of the revisit made.
    report = ok(api.as_("supervisor").get("/reports/collectors", params={"from": "2026-05-01", "to": "2026-06-30"}))
    mine = next(c for c in report["collectors"] if c["collector"] == "collector-1")
    assert mine["findings"] == {"revisit.not_made_in_time": 1}
    assert mine["satisfaction"] == {"revisits": 1, "mean": 4.0, "scores": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    rebuilt_equals_live(api, "aftercare", "compliance")


@sqlite_only
def test_a_strategy_that_owes_revisits_to_its_segment_puts_them_on_the_worklist_and_judges_them(api):
    """Revisits are a policy figure a strategy may override (docs/strategies.md): here the policy
    owes none, and the strategy of the customers in segment `key` owes one 10 days after settling."""
    ok(api.as_("service").post("/customers", json={**CUSTOMER, "segment": "key"}), 201)
    ok(api.as_("service").post("/customers", json={**CUSTOMER, "customer_id": "C-B"}), 201)
    key_accounts = {"id": "key-accounts", "match": {"segments": ["key"]}, "revisits": {**REVISITS, "after_days": 10}}
    adopt(api, "2026.2", strategies=[key_accounts])
    key, plain = issue(api, "INV-K-1"), issue(api, "INV-K-2", customer="C-B")
    for rid in (key, plain):
        settle(api, rid)  # settled on 2026-04-10: owed from 2026-04-20, by the end of 2026-04-27

    at(api, datetime(2026, 4, 20, 1, 0, tzinfo=UTC))
    assert worklist_revisits(api) == ["INV-K-1"]  # the plain customer follows the policy: none owed
    at(api, datetime(2026, 4, 27, 16, 0, tzinfo=UTC))
    assert [f["invoice_number"] for f in revisit_findings(api)] == ["INV-K-1"]
    rebuilt_equals_live(api, "aftercare", "compliance")


@sqlite_only
def test_a_revisit_cannot_be_in_the_future_nor_off_the_scale(api):
    ok(api.as_("service").post("/customers", json=CUSTOMER), 201)
    path = f"/customers/{CUSTOMER['customer_id']}/record-revisit"
    base = {"channel": "phone", "feedback": "ok", "satisfaction": 3}
    later = (api.services.clock.now() + timedelta(hours=1)).isoformat()
    assert api.as_("collector").post(path, json={**base, "occurred_at": later}).status_code == 422
    assert api.as_("collector").post(path, json={**base, "satisfaction": 6}).status_code == 422
    assert api.as_("sales").post(path, json=base).status_code == 403
    assert ok(api.as_("service").get(f"/customers/{CUSTOMER['customer_id']}"))["revisits"] == []


def test_an_upheld_complaint_about_a_contact_counts_for_the_contacts_collector_and_no_other(api):
    ok(api.as_("service").post("/customers", json=CUSTOMER), 201)
    rid = issue(api, "INV-C-1", collector="collector-2")  # assigned to collector-2 ...
    at(api, datetime(2026, 4, 2, 2, 0, tzinfo=UTC))
    contact = {"channel": "phone", "outcome": "reached", "note": "called", "next_step": "call Monday"}
    version = ok(api.as_("collector").post(f"/receivables/{rid}/record-contact", json=contact))["version"]  # ... called by collector-1

    at(api, datetime(2026, 4, 3, 2, 0, tzinfo=UTC))
    complaint = {"channel": "phone", "text": "called three times at lunch", "severity": "high", "about_version": version}
    assert api.as_("collector").post(f"/receivables/{rid}/record-complaint", json=complaint).status_code == 403
    recorded = ok(api.as_("customer_service").post(f"/receivables/{rid}/record-complaint", json=complaint))
    assert recorded["allowed_commands"][-2:] == ["record_complaint", "resolve_complaint"] or "resolve_complaint" in recorded["allowed_commands"]
    listed = ok(api.as_("supervisor").get("/complaints", params={"open": "true"}))
    assert [(c["collector"], c["about_version"], c["outcome"]) for c in listed] == [("collector-1", version, None)]

    at(api, datetime(2026, 4, 6, 2, 0, tzinfo=UTC))
    ruling = {"outcome": "upheld", "action": "coached on the contact windows"}
    assert api.as_("customer_service").post(f"/receivables/{rid}/resolve-complaint", json=ruling).status_code == 403
    ok(api.as_("supervisor").post(f"/receivables/{rid}/resolve-complaint", json=ruling))
    again = api.as_("supervisor").post(f"/receivables/{rid}/resolve-complaint", json=ruling)
    assert again.status_code == 422 and again.json()["rule_id"] == "complaint.none_open"

    report = ok(api.as_("supervisor").get("/reports/collectors", params={"from": "2026-04-01", "to": "2026-04-30"}))
    by_collector = {c["collector"]: c["complaints"] for c in report["collectors"]}
    assert by_collector["collector-1"] == {"received": 1, "upheld": 1, "not_upheld": 0, "open": 0}
    assert by_collector.get("collector-2", {"upheld": 0})["upheld"] == 0
    per_customer = ok(api.as_("supervisor").get("/complaints", params={"customer_id": CUSTOMER["customer_id"]}))
    assert [(c["outcome"], c["action"], c["resolved_by"]) for c in per_customer] == [
        ("upheld", "coached on the contact windows", "supervisor-1")
    ]
    assert ok(api.as_("collector").get("/complaints")) == per_customer  # a collector sees those about their own work
    rebuilt_equals_live(api, "aftercare")


@sqlite_only
def test_a_settled_receivable_takes_complaints_and_nothing_else(api):
    ok(api.as_("service").post("/customers", json=CUSTOMER), 201)
    rid = issue(api, "INV-C-2")
    settle(api, rid)
    body = {"channel": "email", "text": "rude collector", "severity": "medium"}
    settled = ok(api.as_("customer_service").post(f"/receivables/{rid}/record-complaint", json=body))
    assert (settled["state"], settled["allowed_commands"]) == ("settled", ["record_complaint", "resolve_complaint"])
    refused = api.as_("service").post(f"/receivables/{rid}/record-payment", json={
        "amount": "1.00", "method": "cash", "paid_on": "2026-04-10", "reference": "X"})
    assert refused.status_code == 409


# ---- the reasons for non-payment over a generated quarter --------------------------------------

WORDS = ["cash_flow_difficulty", "资金周转困难", "Cash flow", "goods_dispute", "对质量有异议", "invoice_not_received",
         "forgot", "refuses", "unreachable", "联系不上", "the dog ate it", None]


@sqlite_only
def test_the_reasons_report_over_a_generated_quarter_equals_a_count_from_the_events(api):
    rng = random.Random(20260401)
    customers = {"C-A": "A", "C-B": "B", "C-C": "C"}
    for cid, tier in customers.items():
        ok(api.as_("service").post("/customers", json={**CUSTOMER, "customer_id": cid, "tier": tier}), 201)
    start = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    at(api, start)
    ids = []
    for n in range(12):
        body = invoice(f"INV-Q-{n}", customer_id=rng.choice(sorted(customers)), issued_on="2026-01-01",
                       due_on="2026-01-15", amount=f"{rng.randint(100, 9000)}.{rng.randint(0, 99):02d}",
                       collector=rng.choice(["collector-1", "collector-2"]))
        ids.append(ok(api.as_("service").post("/receivables", json=body), 201)["id"])
    # Ninety days of contacts, disputes and part payments, each told at its own moment.
    for day in range(90):
        when = start + timedelta(days=day, hours=rng.randint(0, 8))
        at(api, when)
        for _ in range(rng.choice((0, 1, 1))):
            rid = rng.choice(ids)
            kind = rng.random()
            if kind < 0.7:
                body = {"channel": "phone", "outcome": "reached", "note": "n", "next_step": "s"}
                words = rng.choice(WORDS)
                if words is not None:
                    body["reason_for_non_payment"] = words
                api.as_("collector").post(f"/receivables/{rid}/record-contact", json=body)
            elif kind < 0.8:
                api.as_("collector").post(f"/receivables/{rid}/raise-dispute",
                                          json={"reason": "r", "reason_for_non_payment": rng.choice(WORDS[:-1])})
            else:
                api.as_("service").post(f"/receivables/{rid}/record-payment", json={
                    "amount": f"{rng.randint(1, 90)}.00", "method": "cash", "paid_on": when.date().isoformat(),
                    "reference": f"Q-{day}-{rng.random()}"})
    at(api, datetime(2026, 4, 2, 1, 0, tzinfo=UTC))
    policy = api.services.app.policy()
    first, last = date(2026, 1, 1), date(2026, 3, 31)
    zone = api.services.settings.report_timezone

    # The count made here, from the events: each contact and dispute with a reason in the quarter.
    expected: dict[str, dict[Any, dict[str, Any]]] = {g: defaultdict(dict) for g in ("tier", "collector", "customer")}
    latest: dict[str, tuple[dict[str, Any], str, str, Decimal]] = {}
    for rid in ids:
        events = list(api.services.app.events.get(__import__("uuid").UUID(rid)))
        issued = events[0]
        collector, paid, amount = issued.collector, Decimal(0), issued.amount
        for e in events:
            if isinstance(e, Receivable.PaymentRecorded):
                paid += e.amount
            if isinstance(e, Receivable.ContactRecorded | Receivable.DisputeRaised):
                code = classify_reason(e.reason_for_non_payment, policy)
                when = (getattr(e, "occurred_at", None) or e.timestamp).astimezone(__import__("zoneinfo").ZoneInfo(zone)).date()
                if code is None or not first <= when <= last:
                    continue
                keys = {"tier": customers[issued.customer_id], "collector": collector, "customer": issued.customer_id}
                for group, key in keys.items():
                    figures = expected[group][key].setdefault(code, {"count": 0, "receivables": 0, "balances": Counter()})
                    figures["count"] += 1
                latest[rid] = (keys, code, issued.currency, amount - paid)
    for keys, code, currency, balance in latest.values():
        for group, key in keys.items():
            expected[group][key][code]["receivables"] += 1
            expected[group][key][code]["balances"][currency] += balance

    assert sum(f["count"] for g in expected["tier"].values() for f in g.values()) > 25  # a real quarter's worth
    for group in ("tier", "collector", "customer"):
        report = ok(api.as_("supervisor").get("/reports/non-payment-reasons",
                                              params={"from": first.isoformat(), "to": last.isoformat(), "group_by": group}))
        got = {
            g["key"]: {r["reason"]: {"count": r["count"], "receivables": r["receivables"],
                                      "balances": Counter({b["currency"]: Decimal(b["balance"]) for b in r["balances"]})}
                       for r in g["reasons"]}
            for g in report["groups"]
        }
        assert got == {k: dict(v) for k, v in expected[group].items()}, group
        assert report["vocabulary"][-1] == "unclassified" and "cash_flow_difficulty" in report["vocabulary"]
    assert "unclassified" in {r["reason"] for r in report["totals"]}  # "the dog ate it" is kept, and counted apart

    # The worklist says the latest reason beside each item.
    items = ok(api.as_("supervisor").get("/worklist"))["items"]
    assert {i["receivable_id"]: i["latest_reason"] for i in items if i["receivable_id"] in latest} == {
        rid: code for rid, (_, code, _, _) in latest.items() if any(i["receivable_id"] == rid for i in items)
    }
