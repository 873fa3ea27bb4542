"""The business calendar and the timers a receivable owes, as pure functions.

Receivables are built by their own commands at hand-picked instants and the
policies by hand; every expected instant is written out in UTC so the tests
do not lean on the code they check. 2026: March 2 is a Monday; Los Angeles
moves to summer time (UTC-7) on Sunday March 8; Shanghai is UTC+8 all year.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from collections_es.domain import calendar
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.schedule import Timer, owed
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor, Context

SH = "Asia/Shanghai"
LA = "America/Los_Angeles"
WEEKDAY_WINDOWS = {
    day: [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "18:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
}


def make_policy(**overrides: object) -> CollectionPolicy:
    """The figures of docs/domain.md, built by hand."""
    return CollectionPolicy.model_validate({"version": "unit-1", "contact": {"windows": WEEKDAY_WINDOWS}, **overrides})


POLICY = make_policy()
COLLECTOR = Actor("collector:ann", "collector")
SCHEDULER = Actor(SCHEDULER_ACTOR, "service")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def ctx(at: str, actor: Actor = COLLECTOR, policy: CollectionPolicy = POLICY) -> Context:
    return Context(actor=actor, now=utc(at), correlation_id="unit", policy=policy)


def issued(
    due_on: date = date(2026, 4, 3),
    *,
    tz: str = SH,
    at: str = "2026-03-02T01:00:00Z",
    issued_on: date = date(2026, 3, 2),
    amount: str = "1200.50",
) -> Receivable:
    r = Receivable.issue(
        ctx(at, SCHEDULER),
        invoice_number=f"INV-{due_on}-{tz}",
        customer_id="C-1",
        timezone=tz,
        amount=amount,
        currency="CNY",
        issued_on=issued_on,
        due_on=due_on,
    )
    r.collect_events()
    return r


def fell_due(r: Receivable, at: str) -> Receivable:
    r.fall_due(ctx(at, SCHEDULER))
    return r


def kinds(timers: list[Timer]) -> list[tuple[str, datetime]]:
    return [(t.kind, t.at) for t in timers]


# ---- the business calendar --------------------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "expected"),
    [
        (date(2026, 4, 3), SH, "2026-04-02T16:00:00Z"),
        (date(2026, 4, 3), LA, "2026-04-03T07:00:00Z"),  # summer time, UTC-7
        (date(2026, 3, 7), LA, "2026-03-07T08:00:00Z"),  # winter time, UTC-8
        (date(2026, 3, 8), LA, "2026-03-08T08:00:00Z"),  # the switch happens at 02:00, after midnight
        (date(2026, 3, 9), LA, "2026-03-09T07:00:00Z"),
        (date(2026, 11, 1), LA, "2026-11-01T07:00:00Z"),  # back to winter time at 02:00 that day
        (date(2026, 11, 2), LA, "2026-11-02T08:00:00Z"),
    ],
)
def test_a_local_day_starts_at_local_midnight_whatever_the_offset_that_day(day, tz, expected):
    assert calendar.start_of_day(day, tz) == utc(expected)


def test_weekends_and_policy_holidays_are_not_business_days():
    policy = make_policy(holidays=["2026-04-06"])
    assert calendar.is_business_day(date(2026, 4, 3), policy)  # Friday
    assert not calendar.is_business_day(date(2026, 4, 4), policy)  # Saturday
    assert not calendar.is_business_day(date(2026, 4, 5), policy)  # Sunday
    assert not calendar.is_business_day(date(2026, 4, 6), policy)  # Monday, a holiday
    assert calendar.is_business_day(date(2026, 4, 6), POLICY)  # not a holiday without it
    assert calendar.is_business_day(date(2026, 4, 7), policy)


def test_a_day_without_contact_windows_is_not_a_business_day_even_on_a_weekday():
    policy = make_policy(contact={"windows": {"mon": [{"start": "10:00", "end": "11:00"}]}})
    assert calendar.is_business_day(date(2026, 3, 2), policy)
    assert not calendar.is_business_day(date(2026, 3, 3), policy)


def test_the_business_day_on_or_before_a_weekend_is_the_friday_and_skips_holidays_too():
    policy = make_policy(holidays=["2026-04-03", "2026-04-02"])
    assert calendar.business_day_on_or_before(date(2026, 3, 28), POLICY) == date(2026, 3, 27)
    assert calendar.business_day_on_or_before(date(2026, 3, 29), POLICY) == date(2026, 3, 27)
    assert calendar.business_day_on_or_before(date(2026, 3, 27), POLICY) == date(2026, 3, 27)
    assert calendar.business_day_on_or_before(date(2026, 4, 5), policy) == date(2026, 4, 1)


def test_the_business_day_on_or_after_a_weekend_and_a_holiday_monday_is_the_tuesday():
    policy = make_policy(holidays=["2026-04-06"])
    assert calendar.business_day_on_or_after(date(2026, 4, 4), policy) == date(2026, 4, 7)
    assert calendar.business_day_on_or_after(date(2026, 4, 4), POLICY) == date(2026, 4, 6)


def test_a_policy_without_any_business_day_is_refused_rather_than_looping_forever():
    with pytest.raises(ValueError, match="at least one weekday needs a contact window"):
        make_policy(contact={"windows": {}})
    # The calendar still guards itself against such a policy (built unvalidated here).
    valid = make_policy()
    policy = valid.model_copy(update={"contact": valid.contact.model_copy(update={"windows": {}})})
    with pytest.raises(ValueError, match="no business day"):
        calendar.business_day_on_or_before(date(2026, 4, 4), policy)
    with pytest.raises(ValueError, match="no contact window"):
        calendar.next_contact_moment(utc("2026-04-04T00:00:00Z"), SH, policy)


@pytest.mark.parametrize(
    ("after", "tz", "expected"),
    [
        ("2026-03-02T02:30:00Z", SH, "2026-03-02T02:30:00Z"),  # Mon 10:30, inside the morning window
        ("2026-03-02T01:00:00Z", SH, "2026-03-02T01:00:00Z"),  # Mon 09:00 exactly: windows include their start
        ("2026-03-02T04:00:00Z", SH, "2026-03-02T06:00:00Z"),  # Mon 12:00 exactly: windows exclude their end
        ("2026-03-02T05:15:00Z", SH, "2026-03-02T06:00:00Z"),  # lunch → 14:00
        ("2026-03-02T10:00:00Z", SH, "2026-03-03T01:00:00Z"),  # Mon 18:00 → Tue 09:00
        ("2026-03-06T10:30:00Z", SH, "2026-03-09T01:00:00Z"),  # Fri 18:30 → Mon 09:00
        ("2026-03-07T01:00:00Z", SH, "2026-03-09T01:00:00Z"),  # Saturday → Monday
        ("2026-03-06T17:00:00Z", LA, "2026-03-06T17:00:00Z"),  # Fri 09:00 in winter time
        ("2026-03-07T02:00:00Z", LA, "2026-03-09T16:00:00Z"),  # Fri 18:00 PST → Mon 09:00 PDT, after the switch
        ("2026-03-06T02:30:00Z", LA, "2026-03-06T17:00:00Z"),  # Thu 18:30 PST → Fri 09:00 PST
    ],
)
def test_the_next_contact_moment_is_inside_a_window_on_a_business_day_in_the_customers_zone(after, tz, expected):
    assert calendar.next_contact_moment(utc(after), tz, POLICY) == utc(expected)


def test_contact_windows_hold_local_time_so_the_same_instant_is_inside_for_one_customer_and_outside_for_another():
    at = utc("2026-04-07T02:00:00Z")  # Tuesday 10:00 in Shanghai, Monday 19:00 in Los Angeles
    assert calendar.is_within_contact_window(at, SH, POLICY)
    assert not calendar.is_within_contact_window(at, LA, POLICY)
    assert calendar.next_contact_moment(at, LA, POLICY) == utc("2026-04-07T16:00:00Z")


def test_the_first_contact_moment_on_a_holiday_is_the_next_business_days_first_window():
    policy = make_policy(holidays=["2026-04-06"])
    assert calendar.first_contact_moment_on(date(2026, 4, 4), SH, policy) == utc("2026-04-07T01:00:00Z")
    assert calendar.first_contact_moment_on(date(2026, 4, 4), LA, policy) == utc("2026-04-07T16:00:00Z")
    assert calendar.first_contact_moment_on(date(2026, 4, 6), SH, POLICY) == utc("2026-04-06T01:00:00Z")


def test_an_unknown_time_zone_is_a_rule_violation_on_the_timezone_field():
    assert calendar.check_timezone(LA) == LA
    with pytest.raises(RuleViolationError) as info:
        calendar.check_timezone("Mars/Olympus_Mons")
    assert (info.value.rule_id, info.value.field) == ("timezone.unknown", "timezone")


def test_a_policy_whose_escalation_comes_no_later_than_follow_up_is_invalid():
    with pytest.raises(ValueError, match="escalate_after_days must be greater"):
        make_policy(follow_up_after_days=5, escalate_after_days=5)


def test_a_contact_window_that_ends_before_it_starts_is_invalid():
    with pytest.raises(ValueError, match="must be after start"):
        make_policy(contact={"windows": {"mon": [{"start": "12:00", "end": "09:00"}]}})
    assert make_policy().contact.windows["mon"][0].start == time(9)


# ---- what a receivable owes -------------------------------------------------


def test_an_issued_receivable_owes_a_reminder_at_nine_a_week_before_due_then_falls_due_at_local_midnight():
    r = issued(date(2026, 4, 3), tz=SH)
    assert kinds(owed(r, POLICY, utc("2026-03-02T01:00:00Z"))) == [
        ("reminder", utc("2026-03-27T01:00:00Z")),  # Friday 27 March, 09:00 in Shanghai
        ("fall_due", utc("2026-04-02T16:00:00Z")),  # 3 April, 00:00 in Shanghai
        ("limitation_warning", utc("2029-01-03T16:00:00Z")),  # 90 days before 2029-04-04 (from the day after due)
    ]


def test_the_same_receivable_for_a_customer_in_los_angeles_owes_the_same_local_moments():
    r = issued(date(2026, 4, 3), tz=LA)
    timers = owed(r, POLICY, utc("2026-03-02T17:00:00Z"))
    assert kinds(timers) == [
        ("reminder", utc("2026-03-27T16:00:00Z")),
        ("fall_due", utc("2026-04-03T07:00:00Z")),
        ("limitation_warning", utc("2029-01-04T08:00:00Z")),  # winter time again in January
    ]
    assert [t.command for t in timers] == ["send_reminder", "fall_due", "warn_limitation"]
    assert timers[2].reason == "limitation period lapses on 2029-04-04"


@pytest.mark.parametrize(
    ("due_on", "reminder_at"),
    [
        (date(2026, 4, 4), "2026-03-27T01:00:00Z"),  # reminder day Saturday 28 March → Friday 27
        (date(2026, 4, 5), "2026-03-27T01:00:00Z"),  # reminder day Sunday 29 March → Friday 27
        (date(2026, 4, 6), "2026-03-30T01:00:00Z"),  # reminder day Monday 30 March stays
    ],
)
def test_a_reminder_whose_day_falls_on_a_weekend_is_owed_on_the_preceding_friday_morning(due_on, reminder_at):
    timers = owed(issued(due_on), POLICY, utc("2026-03-02T01:00:00Z"))
    assert timers[0].kind == "reminder"
    assert timers[0].at == utc(reminder_at)
    assert calendar.is_within_contact_window(timers[0].at, SH, POLICY)


def test_a_reminder_whose_day_is_a_holiday_is_owed_on_the_business_day_before():
    policy = make_policy(holidays=["2026-03-27", "2026-03-26"])
    timers = owed(issued(date(2026, 4, 3)), policy, utc("2026-03-02T01:00:00Z"))
    assert timers[0].kind == "reminder"
    assert timers[0].at == utc("2026-03-25T01:00:00Z")  # Wednesday


def test_the_reminder_owed_on_the_friday_before_a_weekend_reminder_day_is_accepted_by_the_receivable():
    r = issued(date(2026, 4, 4))
    reminder = owed(r, POLICY, utc("2026-03-02T01:00:00Z"))[0]
    assert reminder.at == utc("2026-03-27T01:00:00Z")
    r.send_reminder(ctx("2026-03-27T01:00:00Z", SCHEDULER), channel="email")
    assert r.state == "reminded"


def test_a_receivable_issued_inside_the_lead_time_owes_its_reminder_at_the_next_contact_moment():
    # Issued Saturday 28 March at 10:00 in Shanghai, due Friday 3 April: remind on Monday at 09:00.
    r = issued(date(2026, 4, 3), at="2026-03-28T02:00:00Z", issued_on=date(2026, 3, 28))
    timers = owed(r, POLICY, utc("2026-03-28T02:00:00Z"))
    assert kinds(timers)[:2] == [("reminder", utc("2026-03-30T01:00:00Z")), ("fall_due", utc("2026-04-02T16:00:00Z"))]
    # The same in the middle of a Monday morning: at once.
    timers = owed(r, POLICY, utc("2026-03-30T02:17:00Z"))
    assert timers[0].at == utc("2026-03-30T02:17:00Z")


def test_no_reminder_is_owed_when_the_next_contact_moment_comes_after_the_due_date_starts():
    # Issued on Friday evening, due on Monday: the next contact moment is Monday 09:00, past midnight.
    r = issued(date(2026, 3, 30), at="2026-03-27T11:00:00Z", issued_on=date(2026, 3, 27))
    assert [t.kind for t in owed(r, POLICY, utc("2026-03-27T11:00:00Z"))] == ["fall_due", "limitation_warning"]


def test_a_reminded_receivable_owes_no_second_reminder_only_falling_due():
    r = issued()
    r.send_reminder(ctx("2026-03-27T01:00:00Z", SCHEDULER), channel="email")
    assert [t.kind for t in owed(r, POLICY, utc("2026-03-27T01:00:00Z"))] == ["fall_due", "limitation_warning"]


def test_a_due_receivable_owes_follow_up_at_the_first_window_after_a_weekend_and_a_holiday_and_escalation_at_thirty_days():
    policy = make_policy(holidays=["2026-04-06"])
    for tz, follow_up, escalate in (
        (SH, "2026-04-07T01:00:00Z", "2026-05-02T16:00:00Z"),
        (LA, "2026-04-07T16:00:00Z", "2026-05-03T07:00:00Z"),
    ):
        r = fell_due(issued(tz=tz), "2026-04-03T08:00:00Z")
        assert kinds(owed(r, policy, utc("2026-04-03T08:00:00Z")))[:2] == [
            ("follow_up", utc(follow_up)),
            ("escalate", utc(escalate)),
        ]


def test_a_receivable_in_follow_up_owes_only_escalation_and_none_while_disputed():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.start_follow_up(ctx("2026-04-07T01:00:00Z"))
    assert [t.kind for t in owed(r, POLICY, utc("2026-04-07T01:00:00Z"))] == ["escalate", "limitation_warning"]
    r.raise_dispute(ctx("2026-04-20T02:00:00Z"), reason="goods damaged")
    assert [t.kind for t in owed(r, POLICY, utc("2026-04-20T02:00:00Z"))] == ["limitation_warning"]
    r.resolve_dispute(ctx("2026-05-12T02:00:00Z", Actor("sup", "supervisor")), resolution="credit note", adjusted_amount="1000.00")
    timers = owed(r, POLICY, utc("2026-05-12T02:00:00Z"))
    assert kinds(timers)[0] == ("escalate", utc("2026-05-02T16:00:00Z"))  # past: fires at the next tick


def test_a_promise_owes_a_check_the_day_after_its_date_plus_grace_until_it_is_covered():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.promise_to_pay(ctx("2026-04-10T02:00:00Z"), amount="1200.50", promised_on=date(2026, 4, 20))
    check = owed(r, POLICY, utc("2026-04-10T02:00:00Z"))[0]
    assert (check.kind, check.at, check.command) == ("promise_check", utc("2026-04-23T16:00:00Z"), "break_promise")
    r.record_payment(ctx("2026-04-18T02:00:00Z"), amount="500.00", method="alipay", paid_on=date(2026, 4, 18), reference="P1")
    assert owed(r, POLICY, utc("2026-04-18T02:00:00Z"))[0].at == check.at  # partly paid: still checked
    r.raise_dispute(ctx("2026-04-19T02:00:00Z"), reason="wrong quantity")
    assert [t.kind for t in owed(r, POLICY, utc("2026-04-19T02:00:00Z"))] == ["limitation_warning"]


def test_a_promise_of_part_of_the_balance_once_covered_is_kept_and_owes_no_check_but_escalation_again():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.promise_to_pay(ctx("2026-04-10T02:00:00Z"), amount="600.00", promised_on=date(2026, 4, 20))
    r.record_payment(ctx("2026-04-18T02:00:00Z"), amount="600.00", method="alipay", paid_on=date(2026, 4, 18), reference="P1")
    assert r.state == "following_up" and r.balance == Decimal("600.50")
    timers = owed(r, POLICY, utc("2026-04-18T02:00:00Z"))
    assert [t.kind for t in timers] == ["escalate", "limitation_warning"]
    assert timers[0].at == utc("2026-05-02T16:00:00Z")  # 3 May 00:00 in Shanghai, 30 days past due


def test_a_covered_promise_parked_before_the_fix_owes_keeping_it_at_once_even_while_disputed():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.promise_to_pay(ctx("2026-04-10T02:00:00Z"), amount="600.00", promised_on=date(2026, 4, 20))
    # As recorded before PromiseKept existed: the payment alone, the receivable left in `promised`.
    r._record(Receivable.PaymentRecorded, ctx("2026-04-18T02:00:00Z", SCHEDULER), state_after="promised",
              amount=Decimal("600.00"), method="alipay", paid_on=date(2026, 4, 18), reference="P1")
    assert r.state == "promised" and r.is_promise_covered()
    kept = owed(r, POLICY, utc("2026-04-18T02:00:00Z"))[0]
    assert (kept.kind, kept.at, kept.command) == ("promise_kept", utc("2026-04-18T02:00:00Z"), "keep_promise")
    r.raise_dispute(ctx("2026-04-19T02:00:00Z"), reason="wrong quantity")
    assert [t.kind for t in owed(r, POLICY, utc("2026-04-19T02:00:00Z"))] == ["promise_kept", "limitation_warning"]
    r.resolve_dispute(ctx("2026-04-20T02:00:00Z", Actor("sup", "supervisor")), resolution="no credit note")
    r.keep_promise(ctx("2026-04-20T03:00:00Z", SCHEDULER))
    assert r.state == "following_up" and r.promise is None
    assert [t.kind for t in owed(r, POLICY, utc("2026-04-20T03:00:00Z"))] == ["escalate", "limitation_warning"]


def test_an_installment_plan_owes_a_check_for_the_first_installment_not_yet_covered():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    plan = [
        {"due_on": date(2026, 4, 20), "amount": "400.00"},
        {"due_on": date(2026, 5, 20), "amount": "400.00"},
        {"due_on": date(2026, 6, 20), "amount": "400.50"},
    ]
    r.agree_installment_plan(ctx("2026-04-10T02:00:00Z"), installments=plan, reason="cash flow")
    assert owed(r, POLICY, utc("2026-04-10T02:00:00Z"))[0].at == utc("2026-04-23T16:00:00Z")
    r.record_payment(ctx("2026-04-19T02:00:00Z"), amount="400.00", method="bank_transfer", paid_on=date(2026, 4, 19), reference="I1")
    assert owed(r, POLICY, utc("2026-04-19T02:00:00Z"))[0].at == utc("2026-05-23T16:00:00Z")
    r.record_payment(ctx("2026-04-30T02:00:00Z"), amount="500.00", method="bank_transfer", paid_on=date(2026, 4, 30), reference="I2")
    assert owed(r, POLICY, utc("2026-04-30T02:00:00Z"))[0].at == utc("2026-06-23T16:00:00Z")


def test_an_escalated_or_legal_receivable_owes_only_the_limitation_warning_and_a_final_one_owes_nothing():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.escalate(ctx("2026-05-03T01:00:00Z"), reason="30 days")
    assert [t.kind for t in owed(r, POLICY, utc("2026-05-03T01:00:00Z"))] == ["limitation_warning"]
    r.refer_to_legal(ctx("2026-07-02T01:00:00Z", Actor("sup", "supervisor")), reason="no answer")
    assert [t.kind for t in owed(r, POLICY, utc("2026-07-02T01:00:00Z"))] == ["limitation_warning"]
    r.record_payment(ctx("2026-07-03T01:00:00Z"), amount="1200.50", method="bank_transfer", paid_on=date(2026, 7, 3), reference="P")
    assert r.state == "settled"
    assert owed(r, POLICY, utc("2026-07-03T01:00:00Z")) == []


def test_a_written_off_receivable_owes_nothing():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.escalate(ctx("2026-05-03T01:00:00Z"), reason="30 days")
    r.request_write_off(ctx("2026-06-01T01:00:00Z", Actor("sup-1", "supervisor")), reason="insolvent")
    r.approve_write_off(ctx("2026-06-02T01:00:00Z", Actor("sup-2", "supervisor")))
    assert owed(r, POLICY, utc("2026-06-02T01:00:00Z")) == []


def test_the_limitation_warning_is_owed_ninety_days_before_three_years_after_due_and_once_per_lapse_date():
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    r.escalate(ctx("2026-05-03T01:00:00Z"), reason="30 days")
    warning = owed(r, POLICY, utc("2026-05-03T01:00:00Z"))[0]
    assert (warning.kind, warning.at) == ("limitation_warning", utc("2029-01-03T16:00:00Z"))
    r.warn_limitation(ctx("2029-01-03T16:00:00Z", SCHEDULER))
    assert r.limitation_warned_for == date(2029, 4, 4)
    assert owed(r, POLICY, utc("2029-01-03T16:00:00Z")) == []
    # A debt acknowledged on 1 February 2029 (Shanghai) restarts the period: a new warning is owed.
    r.record_contact(ctx("2029-02-01T02:00:00Z"), channel="phone", outcome="acknowledged", note="will pay")
    assert kinds(owed(r, POLICY, utc("2029-02-01T02:00:00Z"))) == [("limitation_warning", utc("2031-11-02T16:00:00Z"))]


@pytest.mark.parametrize(
    ("command", "lapses_on"),
    [
        ("payment", date(2029, 6, 10)),  # from the day paid, not the day recorded
        ("promise", date(2029, 6, 12)),
        ("acknowledged", date(2029, 6, 12)),
        ("reached", date(2029, 6, 12)),  # the customer reached and asked to pay: a demand
        ("no_answer", date(2029, 4, 4)),  # a call nobody answered interrupts nothing
    ],
)
def test_a_payment_a_promise_an_acknowledgement_or_a_demand_restarts_the_limitation_period(command, lapses_on):
    r = fell_due(issued(), "2026-04-03T01:00:00Z")
    at = ctx("2026-06-12T02:00:00Z")
    if command == "payment":
        r.record_payment(at, amount="100.00", method="wechat_pay", paid_on=date(2026, 6, 10), reference="W1")
    elif command == "promise":
        r.promise_to_pay(at, amount="100.00", promised_on=date(2026, 6, 30))
    else:
        r.record_contact(at, channel="phone", outcome=command, note="called")
    assert r.limitation_lapses_on(POLICY) == lapses_on
    warning = [t for t in owed(r, POLICY, at.now) if t.kind == "limitation_warning"]
    assert [t.at.date() for t in warning] == [date.fromordinal(lapses_on.toordinal() - 91)]  # local midnight is 16:00Z the day before


def test_a_limitation_period_from_the_29th_of_february_lapses_on_the_28th():
    # Due on 28 February 2028: the period runs from the day after, 29 February.
    r = issued(date(2028, 2, 28), issued_on=date(2028, 1, 28), at="2028-01-28T02:00:00Z")
    assert r.limitation_lapses_on(POLICY) == date(2031, 2, 28)
    assert r.limitation_lapses_on(make_policy(limitation_period_years=4)) == date(2032, 2, 29)


def test_timers_come_out_in_time_order_with_ties_broken_by_kind():
    # Escalation one day after due and a one-year limitation (from the day after due) warned
    # 365 days ahead fall on the same midnight.
    policy = make_policy(follow_up_after_days=0, escalate_after_days=1, limitation_period_years=1, limitation_warning_days=365)
    r = fell_due(issued(date(2026, 4, 3)), "2026-04-03T01:00:00Z")
    timers = owed(r, policy, utc("2026-04-03T01:00:00Z"))
    assert timers == sorted(timers, key=lambda t: (t.at, t.kind))
    assert kinds(timers) == [
        ("follow_up", utc("2026-04-03T01:00:00Z")),
        ("escalate", utc("2026-04-03T16:00:00Z")),
        ("limitation_warning", utc("2026-04-03T16:00:00Z")),
    ]


def test_every_timer_names_a_command_the_declaration_lets_time_fire():
    import inspect

    from collections_es.application.commands import TIME_DRIVEN
    from collections_es.domain import schedule

    named = set(re.findall(r'Timer\(\s*"[a-z_]+",[^"]*"([a-z_]+)"', inspect.getsource(schedule)))
    assert named and named <= TIME_DRIVEN, named - TIME_DRIVEN
