"""A quarter of collection, one path per test, driven through time two ways.

Each path runs for two customers side by side, one in Shanghai (UTC+8) and one
in Los Angeles (UTC-8, then UTC-7 from Sunday 8 March 2026), each with the
same invoice: CNY 1,200.50 issued Monday 2 March 2026, due Friday 3 April.
The policy in force is the bundled one plus a holiday on Monday 6 April
(Qingming), so the follow-up owed the day after the due date (a Saturday)
skips the weekend and the holiday and comes on Tuesday 7 April at 09:00 local.

Two drivers run the same script:
- `app`: the application under a FixedClock, with the scheduler ticked once a
  day at 12:30 UTC like a cron job, and at every step of the script;
- `http`: the HTTP API in sandbox mode, the clock moved with
  `POST /sandbox/clock/advance`, the policy holiday adopted with `PUT /policy`.

On each significant day the script checks the receivable (state, balance, days
past due, whether legal referral is suggested) and the events added since the
last check (type, `scheduled_for`, who recorded them, when). Every expected
instant is written out in UTC below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from collections_es.adapters.policy_file import bundled_policy_text, parse_policy
from collections_es.api import present
from collections_es.application.clock import FixedClock, SandboxClock
from collections_es.application.service import Request
from collections_es.domain.errors import NotFoundError
from collections_es.domain.receivable import receivable_id
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor
from projections.timers import timers

from ..conftest import make_services
from .conftest import Api

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
MINUTE = timedelta(minutes=1)
POLICY_VERSION = "2026.1-qingming"
HOLIDAY = "2026-04-06"

CUSTOMERS = {
    "SH": {
        "customer_id": "C-SH",
        "name": "上海示例贸易有限公司",
        "timezone": "Asia/Shanghai",
        "tier": "A",
        "preferred_channel": "email",
        "contacts": {"email": "zhang.wei@example.com", "phone": "13812345678"},
    },
    "LA": {
        "customer_id": "C-LA",
        "name": "Pacific Trading LLC",
        "timezone": "America/Los_Angeles",
        "tier": "B",
        "preferred_channel": "phone",
        "contacts": {"email": "ap@pacific.example.com", "phone": "+1 415 555 0100"},
    },
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


#: The moments the policy owes, per customer: 09:00 or 00:00 local time, in UTC.
MOMENTS = {
    "SH": {
        "reminder": utc("2026-03-27T01:00Z"),  # Friday 27 March 09:00, a week before due
        "fall_due": utc("2026-04-02T16:00Z"),  # Friday 3 April 00:00
        "holiday": utc("2026-04-06T02:00Z"),  # Monday 6 April 10:00, the holiday
        "follow_up": utc("2026-04-07T01:00Z"),  # Tuesday 7 April 09:00 (weekend, then the holiday)
        "promise_check": utc("2026-04-23T16:00Z"),  # 24 April 00:00: promised 20 April + 3 days' grace passed
        "second_installment_check": utc("2026-05-23T16:00Z"),  # 24 May 00:00
        "escalate": utc("2026-05-02T16:00Z"),  # 3 May 00:00, 30 days past due
        "day_90": utc("2026-07-01T16:00Z"),  # 2 July 00:00, 90 days past due
    },
    "LA": {
        "reminder": utc("2026-03-27T16:00Z"),
        "fall_due": utc("2026-04-03T07:00Z"),
        "holiday": utc("2026-04-06T17:00Z"),
        "follow_up": utc("2026-04-07T16:00Z"),
        "promise_check": utc("2026-04-24T07:00Z"),
        "second_installment_check": utc("2026-05-24T07:00Z"),
        "escalate": utc("2026-05-03T07:00Z"),
        "day_90": utc("2026-07-02T07:00Z"),
    },
}


def holiday_policy_text() -> str:
    """The bundled policy file with a new version and the Qingming holiday."""
    text = bundled_policy_text()
    changed = re.sub(r'^version = "[^"]*"', f'version = "{POLICY_VERSION}"', text, count=1, flags=re.MULTILINE)
    changed = changed.replace("holidays = []", f'holidays = ["{HOLIDAY}"]', 1)
    assert changed.count(POLICY_VERSION) == 1 and HOLIDAY in changed
    return changed


# ---- the script -------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """An event expected since the last check; `late` when its timer came back after its instant had passed."""

    type: str
    scheduled_for: datetime | None = None
    late: bool = False


@dataclass(frozen=True)
class Check:
    at: datetime
    who: str  # "SH" or "LA"
    events: list[Expected]
    state: str
    balance: str | None = None
    days_past_due: int | None = None
    legal_referral_suggested: bool | None = None
    timers: list[str] | None = None


@dataclass(frozen=True)
class Act:
    at: datetime
    who: str
    role: str
    command: str
    fields: dict[str, Any]
    event: str
    state: str
    balance: str | None = None


def fired(*names_and_moments: tuple[str, str]) -> Any:
    """`fired(("ReminderSent", "reminder"), ...)` → for a customer, the expected scheduler events."""

    def for_(who: str) -> list[Expected]:
        return [Expected(name, MOMENTS[who][moment]) for name, moment in names_and_moments]

    return for_


def payment(who: str, amount: str, paid_on: str, n: int, method: str = "bank_transfer") -> dict[str, Any]:
    return {"amount": amount, "method": method, "paid_on": paid_on, "reference": f"{who}-PAY-{n}"}


def noon(day: str) -> datetime:
    """12:00 UTC: the same calendar day in Shanghai (20:00) and Los Angeles (04:00 or 05:00)."""
    return utc(f"{day}T12:00Z")


# ---- the drivers ------------------------------------------------------------


def _domain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON fields → the types the application takes (dates)."""

    def convert(key: str, value: Any) -> Any:
        if key in ("paid_on", "promised_on", "due_on", "issued_on") and isinstance(value, str):
            return date.fromisoformat(value)
        if isinstance(value, list):
            return [{k: convert(k, v) for k, v in item.items()} for item in value]
        return value

    return {k: convert(k, v) for k, v in fields.items()}


class Driver:
    """What a script needs: move time, act as a person, read a receivable and its history."""

    name: str
    services: Any

    def start(self) -> None:
        raise NotImplementedError

    def issue(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def at(self, instant: datetime) -> None:
        raise NotImplementedError

    def act(self, who: str, role: str, command: str, fields: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def receivable(self, who: str) -> dict[str, Any]:
        raise NotImplementedError

    def history(self, who: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def expected_occurred_at(self, scheduled_for: datetime) -> datetime:
        raise NotImplementedError

    def timer_kinds(self, who: str) -> list[str]:
        self.services.projections.catch_up(["timers"])
        rid = str(receivable_id(invoice_number(who)))
        query = sa.select(timers.c.kind).where(timers.c.receivable_id == rid).order_by(timers.c.at, timers.c.kind)
        with self.services.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def close(self) -> None:
        self.services.close()


def invoice_number(ref: str) -> str:
    """A customer's ("SH", "LA") invoice of the paths, or any other invoice number as it is."""
    return f"INV-2026-{ref}" if ref in CUSTOMERS else ref


def invoice(who: str, number: str | None = None, due_on: str = "2026-04-03") -> dict[str, Any]:
    return {
        "invoice_number": number or invoice_number(who),
        "customer_id": CUSTOMERS[who]["customer_id"],
        "amount": "1200.50",
        "currency": "CNY",
        "issued_on": "2026-03-02",
        "due_on": due_on,
        "collector": "collector-1",
    }


class AppDriver(Driver):
    """The application, a FixedClock, and a cron-like tick every day at 12:30 UTC."""

    name = "app"

    def __init__(self, database_url: str, tmp_path: Any) -> None:
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text(holiday_policy_text(), "utf-8")
        self.clock = FixedClock(START)
        self.services = make_services(database_url, self.clock, COLLECTIONS_POLICY_FILE=str(policy_file))
        self.next_daily = START.replace(hour=12, minute=30)
        self.ticks: list[datetime] = []

    def start(self) -> None:
        app = self.services.app
        assert app.policy().version == POLICY_VERSION
        for who, customer in CUSTOMERS.items():
            app.register_customer(Request(Actor("supervisor-1", "supervisor")), **customer)
            self.issue(invoice(who))

    def issue(self, body: dict[str, Any]) -> None:
        self.services.app.issue_receivable(Request(Actor("service-1", "service")), **_domain_fields(body))

    def _tick(self, instant: datetime) -> None:
        self.clock.at = instant
        self.services.scheduler.tick(instant)
        self.ticks.append(instant)

    def at(self, instant: datetime) -> None:
        assert instant >= self.clock.now()
        while self.next_daily < instant:
            self._tick(self.next_daily)
            self.next_daily += timedelta(days=1)
        self._tick(instant)

    def act(self, who: str, role: str, command: str, fields: dict[str, Any]) -> dict[str, Any]:
        outcome = self.services.app.execute(
            Request(Actor(f"{role}-1", role)), receivable_id(invoice_number(who)), command, **_domain_fields(fields)
        )
        return self._present(outcome.resource)

    def _present(self, r: Any) -> dict[str, Any]:
        return present.receivable(r, self.clock.now(), self.services.app.policy()).model_dump(mode="json")

    def receivable(self, who: str) -> dict[str, Any]:
        return self._present(self.services.app.get_receivable(receivable_id(invoice_number(who))))

    def history(self, who: str) -> list[dict[str, Any]]:
        events = self.services.app.history(receivable_id(invoice_number(who)))
        return [present.history_entry(e).model_dump(mode="json") for e in events]

    def expected_occurred_at(self, scheduled_for: datetime) -> datetime:
        """The first tick at or after the timer's instant."""
        return min(t for t in self.ticks if t >= scheduled_for)


class HttpDriver(Driver):
    """The HTTP API in sandbox mode: each timer fires at its own instant."""

    name = "http"

    def __init__(self, database_url: str, tmp_path: Any) -> None:
        self.services = make_services(database_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
        assert self.services.sandbox is not None
        self.api = Api(self.services)

    def start(self) -> None:
        document = parse_policy(holiday_policy_text()).model_dump(mode="json")
        response = self.api.client.put("/policy", json=document, headers=self.api.headers("supervisor"))
        assert response.status_code == 200, response.text
        assert response.json()["version"] == POLICY_VERSION
        for who, customer in CUSTOMERS.items():
            assert self.api.as_("supervisor").post("/customers", json=customer).status_code == 201
            self.issue(invoice(who))

    def issue(self, body: dict[str, Any]) -> None:
        response = self.api.as_("service").post("/receivables", json=body)
        assert response.status_code == 201, response.text

    def at(self, instant: datetime) -> None:
        response = self.api.as_("service").post("/sandbox/clock/advance", json={"to": instant.isoformat()})
        assert response.status_code == 200, response.text
        assert utc(response.json()["now"]) == instant
        for f in response.json()["fired"]:
            assert f["outcome"] == "fired", f

    def act(self, who: str, role: str, command: str, fields: dict[str, Any]) -> dict[str, Any]:
        path = f"/receivables/{invoice_number(who)}/{command.replace('_', '-')}"
        response = self.api.as_(role).post(path, json=fields)
        assert response.status_code == 200, response.text
        return response.json()

    def receivable(self, who: str) -> dict[str, Any]:
        response = self.api.as_("auditor").get(f"/receivables/{invoice_number(who)}")
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, who: str) -> list[dict[str, Any]]:
        response = self.api.as_("auditor").get(f"/receivables/{invoice_number(who)}/history")
        assert response.status_code == 200, response.text
        return response.json()

    def expected_occurred_at(self, scheduled_for: datetime) -> datetime:
        return scheduled_for


@pytest.fixture(params=["app", "http"])
def driver(request, database_url, tmp_path) -> Iterator[Driver]:
    d: Driver = (AppDriver if request.param == "app" else HttpDriver)(database_url, tmp_path)
    d.start()
    yield d
    d.close()


@dataclass
class Run:
    """Runs the merged script of both customers in time order and checks every step."""

    driver: Driver
    seen: dict[str, int] = field(default_factory=lambda: {"SH": 1, "LA": 1})  # `Issued` is checked below
    last_act: dict[str, datetime] = field(default_factory=lambda: {"SH": START, "LA": START})

    def __call__(self, script: Any) -> None:
        steps = sorted((step for who in CUSTOMERS for step in script(who)), key=lambda s: s.at)
        for who in CUSTOMERS:
            first = self.driver.history(who)[0]
            assert (first["type"], first["state_after"], first["policy_version"]) == ("Issued", "issued", POLICY_VERSION)
            assert first["data"]["timezone"] == CUSTOMERS[who]["timezone"]
        for step in steps:
            self.driver.at(step.at)
            if isinstance(step, Check):
                self._check(step)
            else:
                self._act(step)
                self.last_act[step.who] = step.at

    def _new_events(self, who: str) -> list[dict[str, Any]]:
        history = self.driver.history(who)
        new = history[self.seen[who] :]
        self.seen[who] = len(history)
        return new

    def _check(self, step: Check) -> None:
        where = f"{self.driver.name} {step.who} at {step.at.isoformat()}"
        new = self._new_events(step.who)
        assert [(e["type"], _instant(e["scheduled_for"])) for e in new] == [
            (x.type, x.scheduled_for) for x in step.events
        ], where
        for event, expected in zip(new, step.events, strict=True):
            assert (event["actor"], event["role"]) == (SCHEDULER_ACTOR, "service"), where
            assert event["policy_version"] == POLICY_VERSION
            occurred_at = _instant(event["occurred_at"])
            if expected.late:
                # Its instant passed while it was held: it fires at the first tick after the act that brought it back.
                assert expected.scheduled_for < self.last_act[step.who] <= occurred_at <= step.at, where
            else:
                assert occurred_at == self.driver.expected_occurred_at(expected.scheduled_for), where
        r = self.driver.receivable(step.who)
        assert r["state"] == step.state, where
        if step.balance is not None:
            assert r["balance"] == step.balance, where
        if step.days_past_due is not None:
            assert r["days_past_due"] == step.days_past_due, where
        if step.legal_referral_suggested is not None:
            assert r["legal_referral_suggested"] is step.legal_referral_suggested, where
        if step.timers is not None:
            assert self.driver.timer_kinds(step.who) == step.timers, where

    def _act(self, step: Act) -> None:
        where = f"{self.driver.name} {step.who} at {step.at.isoformat()}"
        assert self._new_events(step.who) == [], f"{where}: unchecked events before {step.command}"
        r = self.driver.act(step.who, step.role, step.command, step.fields)
        assert r["state"] == step.state, where
        if step.balance is not None:
            assert r["balance"] == step.balance, where
        (event,) = self._new_events(step.who)
        assert (event["type"], event["actor"], event["scheduled_for"]) == (step.event, f"{step.role}-1", None), where
        assert _instant(event["occurred_at"]) == step.at
        assert event["policy_version"] == POLICY_VERSION


def _instant(value: str | None) -> datetime | None:
    return None if value is None else utc(value)


UP_TO_FOLLOW_UP = fired(("ReminderSent", "reminder"), ("FellDue", "fall_due"), ("FollowUpStarted", "follow_up"))


def _through_follow_up(who: str) -> list[Any]:
    """The common start: reminded, due, and followed up after the weekend and the holiday."""
    m = MOMENTS[who]
    return [
        Check(m["reminder"] - MINUTE, who, [], "issued", balance="1200.50"),
        Check(m["reminder"], who, fired(("ReminderSent", "reminder"))(who), "reminded", days_past_due=0),
        Check(m["fall_due"] - MINUTE, who, [], "reminded", days_past_due=0),
        Check(m["fall_due"], who, fired(("FellDue", "fall_due"))(who), "due", days_past_due=0),
        Check(m["holiday"], who, [], "due", days_past_due=3),  # Saturday, Sunday, the holiday: no follow-up
        Check(m["follow_up"] - MINUTE, who, [], "due", days_past_due=4),
        Check(m["follow_up"], who, fired(("FollowUpStarted", "follow_up"))(who), "following_up", days_past_due=4),
    ]


# ---- the paths --------------------------------------------------------------


def test_an_invoice_paid_in_full_before_its_due_date_is_reminded_once_and_settles_with_no_timer_left(driver):
    def script(who: str) -> list[Any]:
        m = MOMENTS[who]
        return [
            Check(m["reminder"] - MINUTE, who, [], "issued", timers=["reminder", "fall_due", "limitation_warning"]),
            Check(m["reminder"], who, fired(("ReminderSent", "reminder"))(who), "reminded", timers=["fall_due", "limitation_warning"]),
            Act(noon("2026-03-30"), who, "service", "record_payment", payment(who, "200.00", "2026-03-30", 1, "alipay"),
                "PaymentRecorded", "reminded", "1000.50"),
            Act(noon("2026-04-01"), who, "service", "record_payment", payment(who, "1000.50", "2026-04-01", 2),
                "PaymentRecorded", "settled", "0.00"),
            Check(utc("2026-07-03T00:00Z"), who, [], "settled", balance="0.00", days_past_due=0, timers=[]),
        ]

    Run(driver)(script)
    sh, la = driver.history("SH"), driver.history("LA")
    assert sh[1]["data"]["channel"] == "email" and la[1]["data"]["channel"] == "phone"  # each customer's preferred channel


def test_a_promise_kept_within_its_grace_days_settles_without_escalation(driver):
    def script(who: str) -> list[Any]:
        return [
            *_through_follow_up(who),
            Act(noon("2026-04-10"), who, "collector", "promise_to_pay",
                {"amount": "1200.50", "promised_on": "2026-04-20", "note": "after their customer pays"},
                "PromiseMade", "promised"),
            Check(noon("2026-04-10"), who, [], "promised", timers=["promise_check", "limitation_warning"]),
            Act(noon("2026-04-15"), who, "service", "record_payment", payment(who, "500.00", "2026-04-15", 1),
                "PaymentRecorded", "promised", "700.50"),
            Check(noon("2026-04-22"), who, [], "promised", balance="700.50"),  # promised date passed, grace runs
            Act(noon("2026-04-23"), who, "service", "record_payment", payment(who, "700.50", "2026-04-23", 2, "wechat_pay"),
                "PaymentRecorded", "settled", "0.00"),
            Check(utc("2026-05-10T00:00Z"), who, [], "settled", balance="0.00", timers=[]),
        ]

    Run(driver)(script)


def test_a_promise_not_paid_by_its_date_plus_grace_is_broken_at_local_midnight_and_escalates(driver):
    def script(who: str) -> list[Any]:
        m = MOMENTS[who]
        return [
            *_through_follow_up(who),
            Act(noon("2026-04-10"), who, "collector", "promise_to_pay",
                {"amount": "1200.50", "promised_on": "2026-04-20"}, "PromiseMade", "promised"),
            Act(noon("2026-04-18"), who, "service", "record_payment", payment(who, "300.00", "2026-04-18", 1),
                "PaymentRecorded", "promised", "900.50"),
            Check(m["promise_check"] - MINUTE, who, [], "promised", balance="900.50"),
            Check(m["promise_check"], who, fired(("PromiseBroken", "promise_check"))(who), "overdue_escalated",
                  balance="900.50", timers=["limitation_warning"]),
            # Broken promises escalate at once; the 30-day escalation has nothing left to do.
            Check(utc("2026-05-10T00:00Z"), who, [], "overdue_escalated", legal_referral_suggested=False),
        ]

    Run(driver)(script)
    for who in CUSTOMERS:
        assert driver.receivable(who)["promise"] is None


def test_an_installment_paid_in_time_keeps_the_plan_alive_and_a_later_one_missed_breaks_it(driver):
    plan = [
        {"due_on": "2026-04-20", "amount": "400.00"},
        {"due_on": "2026-05-20", "amount": "400.00"},
        {"due_on": "2026-06-20", "amount": "400.50"},
    ]

    def script(who: str) -> list[Any]:
        m = MOMENTS[who]
        return [
            *_through_follow_up(who),
            Act(noon("2026-04-10"), who, "collector", "agree_installment_plan",
                {"installments": plan, "reason": "cash-flow trouble"}, "InstallmentPlanAgreed", "promised"),
            Act(noon("2026-04-19"), who, "service", "record_payment", payment(who, "400.00", "2026-04-19", 1),
                "PaymentRecorded", "promised", "800.50"),
            # The first installment's check and the 30-day escalation both pass: the plan holds.
            Check(utc("2026-05-10T00:00Z"), who, [], "promised", balance="800.50", timers=["promise_check", "limitation_warning"]),
            Check(m["second_installment_check"] - MINUTE, who, [], "promised"),
            Check(m["second_installment_check"], who, fired(("PromiseBroken", "second_installment_check"))(who),
                  "overdue_escalated", balance="800.50", timers=["limitation_warning"]),
            Check(utc("2026-06-30T00:00Z"), who, [], "overdue_escalated"),
        ]

    Run(driver)(script)
    for who in CUSTOMERS:
        assert driver.receivable(who)["installment_plan"] is None


def test_an_open_dispute_holds_escalation_past_thirty_days_and_resolving_it_brings_escalation_back(driver):
    def script(who: str) -> list[Any]:
        m = MOMENTS[who]
        return [
            *_through_follow_up(who),
            Act(noon("2026-04-20"), who, "customer_service", "raise_dispute", {"reason": "two cartons damaged"},
                "DisputeRaised", "following_up"),
            Check(noon("2026-04-20"), who, [], "following_up", timers=["limitation_warning"]),
            Check(m["escalate"] + MINUTE, who, [], "following_up", days_past_due=30),
            Check(utc("2026-05-12T00:00Z"), who, [], "following_up"),
            Act(noon("2026-05-12"), who, "supervisor", "resolve_dispute",
                {"resolution": "credit note for the damaged cartons", "adjusted_amount": "1000.00"},
                "DisputeResolved", "following_up", "1000.00"),
            Check(utc("2026-05-13T00:00Z"), who, [Expected("Escalated", m["escalate"], late=True)],
                  "overdue_escalated", balance="1000.00", timers=["limitation_warning"]),
        ]

    Run(driver)(script)
    for who in CUSTOMERS:
        assert driver.receivable(who)["dispute"] is None


def test_long_overdue_escalates_at_thirty_days_and_legal_referral_is_only_suggested_at_ninety(driver):
    def script(who: str) -> list[Any]:
        m = MOMENTS[who]
        return [
            *_through_follow_up(who),
            Check(m["escalate"] - MINUTE, who, [], "following_up", days_past_due=29, legal_referral_suggested=False),
            Check(m["escalate"], who, fired(("Escalated", "escalate"))(who), "overdue_escalated",
                  days_past_due=30, legal_referral_suggested=False, timers=["limitation_warning"]),
            Check(m["day_90"] - MINUTE, who, [], "overdue_escalated", days_past_due=89, legal_referral_suggested=False),
            Check(m["day_90"], who, [], "overdue_escalated", days_past_due=90, legal_referral_suggested=True),
            # Suggested, never done: weeks later nobody has referred it and no timer did.
            Check(utc("2026-07-20T00:00Z"), who, [], "overdue_escalated", legal_referral_suggested=True),
            Act(noon("2026-07-20"), who, "legal", "refer_to_legal", {"reason": "no answer to the lawyer's letter"},
                "ReferredToLegal", "legal"),
            Check(noon("2026-07-20"), who, [], "legal", legal_referral_suggested=False, timers=["limitation_warning"]),
        ]

    Run(driver)(script)


# ---- the limitation period --------------------------------------------------


SERVICE = Actor("service-1", "service")
COLLECTOR = Actor("collector-1", "collector")


def _issue(services: Any, number: str, who: str = "SH") -> Any:
    customer = CUSTOMERS[who]
    try:
        services.app.get_customer(customer["customer_id"])
    except NotFoundError:
        services.app.register_customer(Request(SERVICE), **customer)
    return services.app.issue_receivable(
        Request(SERVICE),
        invoice_number=number,
        customer_id=customer["customer_id"],
        amount="1200.50",
        currency="CNY",
        issued_on=date(2026, 3, 2),
        due_on=date(2026, 4, 3),
    ).resource.id


def _tick(services: Any, at: datetime) -> list[Any]:
    services.clock.at = at
    return services.scheduler.tick(at)


def _limitation_events(services: Any, rid: Any) -> list[tuple[date, datetime]]:
    return [(e.lapses_on, e.scheduled_for) for e in services.app.history(rid) if type(e).__name__ == "LimitationWarned"]


def test_the_limitation_warning_comes_ninety_days_before_three_years_after_due_at_local_midnight(services):
    # Due 3 April 2026: the period runs from the day after (art. 188) and lapses on 4 April 2029.
    sh, la = _issue(services, "INV-LIM-SH", "SH"), _issue(services, "INV-LIM-LA", "LA")
    _tick(services, utc("2026-05-04T00:00Z"))
    assert services.app.get_receivable(sh).state == "overdue_escalated"
    _tick(services, utc("2029-01-03T15:59Z"))  # 23:59 on 3 January in Shanghai
    assert _limitation_events(services, sh) == []
    fired = _tick(services, utc("2029-01-03T16:00Z"))
    assert [(f.kind, f.outcome) for f in fired] == [("limitation_warning", "fired")]
    assert _limitation_events(services, sh) == [(date(2029, 4, 4), utc("2029-01-03T16:00Z"))]
    assert _limitation_events(services, la) == []
    _tick(services, utc("2029-01-04T07:59Z"))  # 23:59 on 3 January in Los Angeles (winter time)
    assert _limitation_events(services, la) == []
    _tick(services, utc("2029-01-04T08:00Z"))
    assert _limitation_events(services, la) == [(date(2029, 4, 4), utc("2029-01-04T08:00Z"))]
    warned = [e for e in services.app.history(sh) if type(e).__name__ == "LimitationWarned"][0]
    assert (warned.actor_id, warned.state_after) == (SCHEDULER_ACTOR, "overdue_escalated")
    assert _tick(services, utc("2029-06-01T00:00Z")) == []  # warned once per lapse date
    assert services.app.get_receivable(sh).state == "overdue_escalated"  # a warning, nothing more


def test_a_payment_a_promise_an_acknowledged_debt_or_a_demand_restarts_the_limitation_period_and_moves_its_warning(services):
    kinds = ("payment", "promise", "acknowledged", "reached", "no_answer")
    refs = {kind: _issue(services, f"INV-LIM-{kind}") for kind in kinds}
    _tick(services, utc("2026-06-12T02:00Z"))  # Friday 12 June 10:00 in Shanghai, inside a contact window
    services.app.execute(
        Request(SERVICE), refs["payment"], "record_payment",
        amount="100.00", method="bank_transfer", paid_on=date(2026, 6, 10), reference="LIM-1",
    )
    services.app.execute(Request(COLLECTOR), refs["promise"], "promise_to_pay", amount="100.00", promised_on=date(2026, 6, 30))
    for outcome in ("acknowledged", "reached", "no_answer"):
        services.app.execute(
            # by e-mail: the policy allows one phone call a day with this customer
            Request(COLLECTOR), refs[outcome], "record_contact", channel="email", outcome=outcome, note="wrote to the payables desk"
        )
    _tick(services, utc("2029-01-03T16:00Z"))
    # Nobody answered: no demand reached the customer, the period still runs from the day after due.
    assert _limitation_events(services, refs["no_answer"]) == [(date(2029, 4, 4), utc("2029-01-03T16:00Z"))]
    for kind in ("payment", "promise", "acknowledged", "reached"):
        assert _limitation_events(services, refs[kind]) == [], kind
    _tick(services, utc("2029-03-11T16:00Z"))  # 12 March 2029, 90 days before 10 June
    assert _limitation_events(services, refs["payment"]) == [(date(2029, 6, 10), utc("2029-03-11T16:00Z"))]
    assert _limitation_events(services, refs["promise"]) == []
    _tick(services, utc("2029-03-13T16:00Z"))  # 14 March 2029, 90 days before 12 June
    for kind in ("promise", "acknowledged", "reached"):
        assert _limitation_events(services, refs[kind]) == [(date(2029, 6, 12), utc("2029-03-13T16:00Z"))], kind


def test_a_debt_acknowledged_after_the_warning_restarts_the_period_and_earns_a_new_warning(services):
    rid = _issue(services, "INV-LIM-AGAIN")
    _tick(services, utc("2029-01-03T16:00Z"))
    assert _limitation_events(services, rid) == [(date(2029, 4, 4), utc("2029-01-03T16:00Z"))]
    _tick(services, utc("2029-02-01T02:00Z"))  # Thursday 1 February 2029, 10:00 in Shanghai
    services.app.execute(Request(COLLECTOR), rid, "record_contact", channel="phone", outcome="acknowledged", note="debt confirmed")
    _tick(services, utc("2031-11-02T15:59Z"))
    assert len(_limitation_events(services, rid)) == 1
    _tick(services, utc("2031-11-02T16:00Z"))  # 3 November 2031, 90 days before 1 February 2032
    assert _limitation_events(services, rid)[1] == (date(2032, 2, 1), utc("2031-11-02T16:00Z"))


# ---- reminders on a weekend or a holiday --------------------------------------

#: Invoices whose reminder day (due − 7) is not a business day, per customer:
#: (invoice, due date, the Friday the reminder is owed, that Friday's 09:00 local in UTC).
OFF_DAY_REMINDERS = {
    "SH": [
        ("INV-SAT-SH", "2026-04-04", utc("2026-03-27T01:00Z")),  # reminder day Saturday 28 March
        ("INV-SUN-SH", "2026-04-05", utc("2026-03-27T01:00Z")),  # reminder day Sunday 29 March
        ("INV-HOL-SH", "2026-04-13", utc("2026-04-03T01:00Z")),  # reminder day the holiday, Monday 6 April
    ],
    "LA": [
        ("INV-SAT-LA", "2026-04-04", utc("2026-03-27T16:00Z")),
        ("INV-SUN-LA", "2026-04-05", utc("2026-03-27T16:00Z")),
        ("INV-HOL-LA", "2026-04-13", utc("2026-04-03T16:00Z")),
    ],
}


def _issue_off_day_invoices(driver: Driver) -> None:
    for who, rows in OFF_DAY_REMINDERS.items():
        for number, due_on, _ in rows:
            driver.issue(invoice(who, number, due_on))


def test_a_reminder_whose_day_is_a_weekend_or_holiday_is_scheduled_for_the_business_day_before_at_nine_local(driver):
    _issue_off_day_invoices(driver)
    for rows in OFF_DAY_REMINDERS.values():
        for number, _, friday_nine in rows:
            driver.services.projections.catch_up(["timers"])
            rid = str(receivable_id(number))
            with driver.services.engine.connect() as conn:
                at = conn.execute(
                    sa.select(timers.c.at).where(timers.c.receivable_id == rid, timers.c.kind == "reminder")
                ).scalar_one()
            assert at.replace(tzinfo=UTC) == friday_nine, number


def test_a_reminder_whose_day_is_a_weekend_or_holiday_goes_out_on_the_business_day_before_inside_the_morning_window(driver):
    _issue_off_day_invoices(driver)
    driver.at(utc("2026-04-04T00:00Z"))  # Saturday 4 April: every Friday morning above has passed
    for who, rows in OFF_DAY_REMINDERS.items():
        for number, _, friday_nine in rows:
            reminders = [e for e in driver.history(number) if e["type"] == "ReminderSent"]
            assert [utc(e["scheduled_for"]) for e in reminders] == [friday_nine], number
            assert utc(reminders[0]["occurred_at"]) == driver.expected_occurred_at(friday_nine), number
            local = friday_nine.astimezone(ZoneInfo(CUSTOMERS[who]["timezone"]))
            assert local.weekday() == 4 and time(9) <= local.time() < time(12), number
            # By Saturday 00:00Z an invoice due that Saturday has fallen due in Shanghai.
            assert driver.receivable(number)["state"] in ("reminded", "due"), number
