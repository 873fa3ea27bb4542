"""Charges through the API, the scheduler and the read models (docs/charges.md, ADR 0053/0054).

The story: CNY 1,200.50 due 1 April 2026 to a customer in Shanghai, under a policy charging
3.65% a year (0.01% of the principal a day), a CNY 50.00 late fee 10 days past due (11 April),
waivers above CNY 1.00 approved by a second supervisor. Figures are worked out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import html

import pytest

from collections_es.adapters.policy_file import load_policy
from collections_es.application.clock import FixedClock, SandboxClock
from collections_es.application.service import Request
from collections_es.domain.policy import ChargesPolicy, CollectionPolicy
from collections_es.domain.receivable import Receivable, receivable_id
from collections_es.domain.trail import Actor

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice
from .projection_history import describe_differences, table_contents
from .test_letters import check_snapshot

CHARGES = ChargesPolicy(
    interest_rate_per_annum=Decimal("0.0365"),
    late_fee_amount=Decimal("50"),
    late_fee_after_days=10,
    waiver_second_approval_above=Decimal("1.00"),
)


def charging_policy() -> CollectionPolicy:
    return load_policy(None).model_copy(update={"version": "2026.1-charges", "charges": CHARGES})


def adopt_charges(services: Any) -> None:
    services.app.adopt_policy(Request(Actor("supervisor-1", "supervisor")), charging_policy())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def issue_the_story(api: Api) -> Api:
    """The story's receivable INV-C-1, issued under the charging policy."""
    adopt_charges(api.services)
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-C-1")).status_code == 201
    return api


@pytest.fixture
def charged(sqlite_url: str, clock: FixedClock) -> Iterator[Api]:
    """The story on SQLite: what these tests check is decided in the domain, the same on both
    databases (the read models' sums are checked on both, with `charged_anywhere`)."""
    services = make_services(sqlite_url, clock)
    yield issue_the_story(Api(services))
    services.close()


@pytest.fixture
def charged_anywhere(api: Api) -> Api:
    """The story on SQLite and on PostgreSQL."""
    return issue_the_story(api)


def pay(api: Api, amount: str, paid_on: str, reference: str) -> dict[str, Any]:
    body = {"amount": amount, "method": "bank_transfer", "paid_on": paid_on, "reference": reference}
    response = api.as_("service").post("/receivables/INV-C-1/record-payment", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_payment_accrues_the_charges_then_settles_fees_interest_and_principal_in_that_order(charged):
    """2-20 April, 19 days on 1,200.50: 19 × 0.120050 = 2.28095 → 2.28 interest; the 50.00 fee
    (11 April). 200.50 paid on 20 April: 50.00 fees, 2.28 interest, 148.22 principal."""
    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    body = pay(charged, "200.50", "2026-04-20", "B-1")
    assert body["balance_breakdown"] == {"principal": "1052.28", "interest": "0.00", "fees": "0.00"}
    assert body["balance"] == "1052.28"
    assert body["charges"] | {"waiver_request": None} == {
        "accrued_through": "2026-04-20",
        "interest_accrued": "2.28",
        "fees_accrued": "50.00",
        "interest_paid": "2.28",
        "fees_paid": "50.00",
        "interest_waived": "0.00",
        "fees_waived": "0.00",
        "waiver_request": None,
    }
    history = charged.as_("auditor").get("/receivables/INV-C-1/history").json()
    entries = history["events"] if isinstance(history, dict) else history
    assert [e["type"] for e in entries][-2:] == ["ChargesAccrued", "PaymentRecorded"]
    assert charged.as_("collector").get("/receivables/INV-C-1").json()["balance_breakdown"] == body["balance_breakdown"]


def test_charges_are_accrued_when_asked_once_a_day_and_never_for_a_day_to_come(charged):
    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    pay(charged, "200.50", "2026-04-20", "B-1")
    charged.services.clock.at = at("2026-05-01T02:00:00+00:00")
    ahead = charged.as_("collector").post("/receivables/INV-C-1/accrue-charges", json={"through": "2026-05-02"})
    assert ahead.status_code == 422 and ahead.json()["rule_id"] == "charges.future" and ahead.json()["field"] == "through"
    assert charged.as_("auditor").post("/receivables/INV-C-1/accrue-charges", json={}).status_code == 403
    # 21-30 April, 10 days on 1,052.28: interest through 30 April = round(2.28095 + 1.05228) = 3.33; adds 1.05.
    done = charged.as_("collector").post("/receivables/INV-C-1/accrue-charges", json={"through": "2026-04-30"})
    assert done.status_code == 200, done.text
    assert done.json()["balance_breakdown"] == {"principal": "1052.28", "interest": "1.05", "fees": "0.00"}
    again = charged.as_("service").post("/receivables/INV-C-1/accrue-charges", json={"through": "2026-04-30"})
    assert again.status_code == 422 and again.json()["rule_id"] == "charges.accrued"
    assert charged.as_("auditor").get("/receivables/INV-C-1").json()["version"] == done.json()["version"]


def test_a_waiver_above_the_threshold_waits_for_a_second_supervisor(charged):
    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    charged.as_("service").post("/receivables/INV-C-1/accrue-charges", json={})  # 2.28 interest, 50.00 fee
    assert charged.as_("collector").post("/receivables/INV-C-1/waive-charges", json={"amount": "1.00", "reason": "x"}).status_code == 403
    small = charged.as_("supervisor").post("/receivables/INV-C-1/waive-charges", json={"amount": "1.00", "reason": "goodwill"})
    assert small.status_code == 200 and small.json()["balance_breakdown"]["fees"] == "49.00"
    big = charged.as_("supervisor").post("/receivables/INV-C-1/waive-charges", json={"amount": "51.28", "reason": "hardship"})
    assert big.status_code == 200
    assert big.json()["charges"]["waiver_request"] == {"amount": "51.28", "reason": "hardship", "requested_by": "supervisor-1"}
    assert big.json()["balance"] == "1251.78", "nothing waived before the approval"
    same = charged.as_("supervisor").post("/receivables/INV-C-1/approve-charges-waiver", json={})
    assert same.status_code == 422 and same.json()["rule_id"] == "charges_waiver.four_eyes"
    approved = charged.as_("supervisor-2").post("/receivables/INV-C-1/approve-charges-waiver", json={"note": "agreed"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["balance_breakdown"] == {"principal": "1200.50", "interest": "0.00", "fees": "0.00"}
    too_much = charged.as_("supervisor").post("/receivables/INV-C-1/waive-charges", json={"amount": "0.01", "reason": "x"})
    assert too_much.status_code == 422 and too_much.json()["rule_id"] == "charges_waiver.exceeds"


def test_aging_and_kpis_keep_principal_and_charges_apart(charged_anywhere):
    charged = charged_anywhere
    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    pay(charged, "200.50", "2026-04-20", "B-1")
    charged.services.clock.at = at("2026-05-01T02:00:00+00:00")
    charged.as_("service").post("/receivables/INV-C-1/accrue-charges", json={"through": "2026-04-30"})  # + 1.05 interest
    aging = charged.as_("auditor").get("/reports/aging", params={"as_of": "2026-04-30"}).json()
    assert (aging["totals"][0]["balance"], aging["totals"][0]["charges"], aging["totals"][0]["count"]) == ("1052.28", "1.05", 1)
    bucket = next(b for b in aging["buckets"] if b["bucket"] == "1-30")
    assert (bucket["balance"], bucket["charges"]) == ("1052.28", "1.05")
    before = charged.as_("auditor").get("/reports/aging", params={"as_of": "2026-04-19"}).json()["totals"][0]
    assert (before["balance"], before["charges"]) == ("1200.50", "0.00"), "the first accrual is dated 20 April"
    kpis = charged.as_("supervisor").get("/reports/kpis", params={"from": "2026-04-01", "to": "2026-04-30"}).json()
    block = kpis["overall"][0]
    assert (block["collected"], block["charges_collected"]) == ("148.22", "52.28")
    assert (block["charges_accrued"], block["charges_waived"]) == ("53.33", "0.00")
    assert block["receivables_at_end"] == "1052.28", "DSO and CEI are of the principal"

    # The list and the worklist show the balance as GET /receivables/{id} does: everything owed.
    listed = charged.as_("collector").get("/receivables", params={"customer_id": CUSTOMER["customer_id"]}).json()["items"]
    assert [i["balance"] for i in listed] == ["1053.33"]
    work = charged.as_("supervisor").get("/worklist").json()["items"]
    assert [i["balance"] for i in work] == ["1053.33"]
    resolved = charged.as_("supervisor").post(
        "/receivables/INV-C-1/raise-dispute", json={"reason": "short delivery"}
    ), charged.as_("supervisor").post(
        "/receivables/INV-C-1/resolve-dispute", json={"resolution": "credit note", "adjusted_amount": "1100.00"}
    )
    assert all(r.status_code == 200 for r in resolved), [r.text for r in resolved]
    # Principal 1,100.00 − 148.22 paid = 951.78, and the 1.05 interest still owed: 952.83.
    assert resolved[1].json()["balance_breakdown"] == {"principal": "951.78", "interest": "1.05", "fees": "0.00"}
    listed = charged.as_("collector").get("/receivables", params={"customer_id": CUSTOMER["customer_id"]}).json()["items"]
    work = charged.as_("supervisor").get("/worklist").json()["items"]
    assert [i["balance"] for i in listed] == [i["balance"] for i in work] == ["952.83"]

    # Every read model rebuilt from the log equals the one kept up to date.
    runner = charged.services.projections
    runner.catch_up()
    live = table_contents(charged.services.engine)
    for name in runner.projections:
        runner.rebuild(name)
    rebuilt = table_contents(charged.services.engine)
    assert rebuilt == live, describe_differences(live, rebuilt)


# ---- the scheduler: each month's end once, whatever the ticks -------------------------------


def accruals(services: Any) -> list[tuple[date, date, Decimal, Decimal]]:
    events = services.app.events.get(receivable_id("INV-T-1"))
    return [(e.since, e.through, e.interest, e.fee) for e in events if isinstance(e, Receivable.ChargesAccrued)]


def story(services: Any) -> None:
    """INV-T-1, due 1 April: the first accrual is the late fee's day (11 April), then 30 April."""
    adopt_charges(services)
    services.app.register_customer(Request(Actor("supervisor-1", "supervisor")), **CUSTOMER)
    services.app.issue_receivable(
        Request(Actor("service-1", "service")),
        **{**invoice("INV-T-1"), "issued_on": date(2026, 3, 2), "due_on": date(2026, 4, 1)},
    )


def test_advancing_the_sandbox_clock_every_minute_for_a_day_accrues_what_one_step_does(tmp_path):
    """From 30 April 12:00 to 1 May 12:00 in Shanghai, the sandbox clock moved a minute at a time
    (1,440 steps, each firing what is due) against one step to the end: each day of April is
    accrued once, through the 11th (the fee's day) and the 30th. On SQLite only: the timers'
    firing is checked on both databases in test_time_scheduler.py; here what matters is what the
    domain accrues per step (bench/charges_ticks.py measures both databases)."""
    start, end = at("2026-04-30T04:00:00+00:00"), at("2026-05-01T04:00:00+00:00")
    stores = {
        name: make_services(f"sqlite:///{tmp_path}/{name}.db", SandboxClock(at("2026-03-02T01:00:00+00:00")), COLLECTIONS_CLOCK="sandbox")
        for name in ("every", "once")
    }
    try:
        for services in stores.values():
            story(services)
            services.scheduler.advance(services.sandbox, start)  # falls due, the fee's accrual, ... up to the start
        every, once = stores["every"], stores["once"]
        for minute in range(1, 24 * 60 + 1):
            every.scheduler.advance(every.sandbox, start + timedelta(minutes=minute))
        once.scheduler.advance(once.sandbox, end)
        assert every.sandbox.now() == once.sandbox.now() == end
        # 2-11 April: 10 × 0.120050 = 1.2005 → 1.20; through 30 April, 29 days: 3.48145 → 3.48, adding 2.28.
        expected = [
            (date(2026, 4, 2), date(2026, 4, 11), Decimal("1.20"), Decimal("50.00")),
            (date(2026, 4, 12), date(2026, 4, 30), Decimal("2.28"), Decimal("0.00")),
        ]
        assert accruals(every) == accruals(once) == expected
        r = every.app.get_receivable(receivable_id("INV-T-1"))
        assert r.balance_breakdown == {"principal": Decimal("1200.50"), "interest": Decimal("3.48"), "fees": Decimal("50.00")}
        assert once.scheduler.tick(end) == [] and accruals(once) == expected
    finally:
        for services in stores.values():
            services.close()


# ---- letters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "fmt"), [("en", "txt"), ("zh-CN", "txt"), ("en", "html")])
def test_a_letter_shows_the_balance_by_part(charged, lang, fmt):
    """Through 20 April: 1,200.50 principal, 2.28 interest, the 50.00 fee: 1,252.78 owed."""
    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    assert charged.as_("service").post("/receivables/INV-C-1/accrue-charges", json={}).status_code == 200
    response = charged.as_("collector").get("/receivables/INV-C-1/letters/dunning", params={"lang": lang, "format": fmt})
    assert response.status_code == 200, response.text
    text = html.unescape(response.text)
    expected = {
        "en": ["Balance outstanding: CN¥1,252.78", "of which principal: CN¥1,200.50",
               "interest (accrued through April 20, 2026): CN¥2.28", "late fees: CN¥50.00"],
        "zh-CN": ["未付余额：¥1,252.78", "其中本金：¥1,200.50", "利息（计至2026年4月20日）：¥2.28", "滞纳金：¥50.00"],
    }[lang]
    for line in expected:
        assert line in text, line
    check_snapshot(f"dunning_with_charges.{lang}.{fmt}", response.text)


def test_the_consoles_receivable_page_shows_the_balance_by_part(charged):
    from .console import Console

    charged.services.clock.at = at("2026-04-20T02:00:00+00:00")
    assert charged.as_("service").post("/receivables/INV-C-1/accrue-charges", json={}).status_code == 200
    for lang, expected in (
        ("en", "principal CN¥1,200.50 · interest CN¥2.28 · late fees CN¥50.00 (charges accrued through"),
        ("zh-CN", "本金 ¥1,200.50 · 利息 ¥2.28 · 滞纳金 ¥50.00 (利息和滞纳金计至"),
    ):
        page = Console(charged.services, lang=lang).as_("collector").get("/console/receivables/INV-C-1")
        assert page.status_code == 200, page.text
        assert expected in html.unescape(page.text)


def test_one_tick_after_months_of_downtime_accrues_each_months_end_once(tmp_path):
    """The scheduler down from 1 April to 1 July 12:00 (Shanghai): one tick fires the fee's day and
    each month's end in turn, each through its own day, as ticking daily would have."""
    services = make_services(f"sqlite:///{tmp_path}/late.db", FixedClock(at("2026-03-02T01:00:00+00:00")))
    try:
        story(services)
        end = at("2026-07-01T04:00:00+00:00")
        services.clock.at = end
        services.scheduler.tick(end)
        # Interest through 11 April 1.20 (10 days), 30 April 3.48 (29), 31 May 7.20 (60), 30 June 10.80 (90 days × 0.120050 = 10.8045).
        assert accruals(services) == [
            (date(2026, 4, 2), date(2026, 4, 11), Decimal("1.20"), Decimal("50.00")),
            (date(2026, 4, 12), date(2026, 4, 30), Decimal("2.28"), Decimal("0.00")),
            (date(2026, 5, 1), date(2026, 5, 31), Decimal("3.72"), Decimal("0.00")),
            (date(2026, 6, 1), date(2026, 6, 30), Decimal("3.60"), Decimal("0.00")),
        ]
        assert services.scheduler.tick(end) == []
    finally:
        services.close()
