"""The Receivable aggregate: given events, when a command, then events or a refusal.

The standard story (see helpers): CNY 1,000.00 to a customer in Shanghai,
issued 2024-01-08, due 2024-02-07, reminders from 2024-01-31.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import hypothesis
import pytest
from hypothesis import strategies as st

from collections_es.domain import lifecycle, schedule
from collections_es.domain.errors import CommandNotAllowedError, RuleViolationError
from collections_es.domain.receivable import receivable_id
from collections_es.domain.trail import Actor

from .helpers import (
    hold,
    record_complaint,
    AMOUNT,
    COLLECTOR,
    DUE_ON,
    INVOICE,
    ISSUED_ON,
    LATER,
    OTHER_COLLECTOR,
    POLICY,
    SCHEDULER,
    SUPERVISOR,
    accrue_charges,
    agree_installment_plan,
    approve_charges_waiver,
    approve_write_off,
    assign_collector,
    break_promise,
    context,
    escalate,
    fall_due,
    given,
    given_in,
    instant,
    issue,
    keep_promise,
    names,
    path_to,
    promise_to_pay,
    propose_installment_plan,
    raise_dispute,
    record_contact,
    record_payment_before_the_fix,
    record_payment,
    record_recovery,
    refer_to_legal,
    replay,
    request_write_off,
    resolve_dispute,
    sample_call,
    send_reminder,
    start_follow_up,
    story,
    waive_charges,
    then_not_allowed,
    then_refused,
    warn_limitation,
    when,
)

D = Decimal
NON_FINAL = ["issued", "reminded", "due", "following_up", "promised", "overdue_escalated", "legal"]


def issue_refused(rule_id: str, **overrides) -> RuleViolationError:
    with pytest.raises(RuleViolationError) as info:
        issue(**overrides).run(None)
    assert info.value.rule_id == rule_id, info.value.detail
    return info.value


# ---- issue ------------------------------------------------------------------


def test_issuing_records_the_invoice_and_starts_in_issued():
    r = issue().run(None)
    events = r.collect_events()
    assert names(events) == ["Issued"]
    assert r.state == "issued"
    assert r.version == 1
    assert r.id == receivable_id(INVOICE)
    assert r.amount == D("1000.00")
    assert r.currency == "CNY"
    assert r.balance == D("1000.00")
    assert r.issued_on == ISSUED_ON and r.due_on == DUE_ON
    assert r.collector == "collector:ann"
    assert not r.is_disputed
    assert r.allowed_commands == lifecycle.allowed_commands("issued")


def test_the_same_invoice_number_always_gives_the_same_receivable_id():
    assert receivable_id("INV-7") == receivable_id("INV-7")
    assert receivable_id("INV-7") != receivable_id("INV-8")


def test_the_amount_is_stored_with_the_currencys_minor_units():
    assert given(issue(amount="1000")).amount.as_tuple().exponent == -2
    assert given(issue(amount="1000", currency="JPY")).amount == D("1000")
    assert given(issue(amount="1000", currency="JPY")).amount.as_tuple().exponent == 0
    assert given(issue(amount="1.005", currency="KWD")).amount == D("1.005")


@pytest.mark.parametrize("amount", ["0", "0.00", "-100"])
def test_a_receivable_must_be_for_more_than_zero(amount):
    issue_refused("money.positive", amount=amount)


def test_a_receivable_in_yuan_with_a_tenth_of_a_fen_is_refused():
    err = issue_refused("money.precision", amount="10.001", currency="CNY")
    assert err.field == "amount"


def test_a_receivable_in_yen_has_no_decimal_places():
    issue_refused("money.precision", amount="100.5", currency="JPY")


def test_a_float_amount_is_refused():
    issue_refused("money.not_decimal", amount=1000.0)


@pytest.mark.parametrize("currency", ["XYZ", "cny", "RMB", "CN"])
def test_a_receivable_needs_an_iso_4217_currency(currency):
    issue_refused("money.currency", currency=currency)


def test_a_due_date_before_the_issue_date_is_refused():
    err = issue_refused("receivable.due_before_issue", due_on=date(2024, 1, 7))
    assert err.field == "due_on"


def test_a_receivable_may_fall_due_on_the_day_it_is_issued():
    r = given(issue(due_on=ISSUED_ON))
    assert r.due_on == r.issued_on


@pytest.mark.parametrize("invoice_number", ["", "   ", None])
def test_a_receivable_needs_an_invoice_number(invoice_number):
    err = issue_refused("field.required", invoice_number=invoice_number)
    assert err.field == "invoice_number"


def test_a_receivable_needs_a_known_time_zone():
    err = issue_refused("timezone.unknown", timezone="Mars/Olympus")
    assert err.field == "timezone"


# ---- send_reminder ----------------------------------------------------------


def test_a_reminder_moves_an_issued_receivable_to_reminded():
    r = given(issue())
    events = when(r, send_reminder(channel="email"))
    assert names(events) == ["ReminderSent"]
    assert events[0].channel == "email"
    assert events[0].state_after == "reminded"
    assert r.state == "reminded"


def test_a_second_reminder_keeps_the_receivable_reminded():
    r = given(issue(), send_reminder())
    assert names(when(r, send_reminder(channel="sms"))) == ["ReminderSent"]
    assert r.state == "reminded"


def test_a_reminder_is_refused_earlier_than_the_policys_lead_days_before_due():
    r = given(issue())
    # due 2024-02-07, lead 7 days: reminders from 2024-01-31, Shanghai time
    then_refused(r, send_reminder(at="2024-01-30T15:59:59+00:00"), "reminder.too_early")
    assert names(when(r, send_reminder(at="2024-01-30T16:00:00+00:00"))) == ["ReminderSent"]


def test_the_reminder_lead_comes_from_the_policy_in_force():
    r = given(issue())
    strict_policy = POLICY.model_copy(update={"reminder_lead_days": 0, "version": "test-2"})
    late = send_reminder().in_context(context("2024-02-01T02:00:00+00:00", SCHEDULER, policy=strict_policy))
    then_refused(r, late, "reminder.too_early")


def test_a_reminder_through_an_unknown_channel_is_refused():
    err = then_refused(given(issue()), send_reminder(channel="pigeon"), "field.choice")
    assert err.field == "channel"


# ---- fall_due ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["issued", "reminded"])
def test_a_receivable_falls_due_on_its_due_date(state):
    r = given_in(state)
    events = when(r, fall_due())
    assert names(events) == ["FellDue"]
    assert r.state == "due"


def test_a_receivable_cannot_fall_due_before_its_due_date():
    then_refused(given(issue()), fall_due(at="2024-02-05T02:00:00+00:00"), "fall_due.not_yet")


def test_a_receivable_in_shanghai_falls_due_at_16_utc_the_day_before_the_due_date():
    r = given(issue(timezone="Asia/Shanghai"))
    then_refused(r, fall_due(at="2024-02-06T15:59:59+00:00"), "fall_due.not_yet")
    assert names(when(r, fall_due(at="2024-02-06T16:00:00+00:00"))) == ["FellDue"]


def test_a_receivable_in_los_angeles_falls_due_only_at_08_utc_on_the_due_date():
    r = given(issue(timezone="America/Los_Angeles"))
    then_refused(r, fall_due(at="2024-02-07T07:59:59+00:00"), "fall_due.not_yet")
    assert names(when(r, fall_due(at="2024-02-07T08:00:00+00:00"))) == ["FellDue"]


def test_days_past_due_count_calendar_days_in_the_customers_time_zone():
    r = given(issue(timezone="Asia/Shanghai"))
    assert r.days_past_due(instant("2024-02-01T00:00:00+00:00")) == 0
    assert r.days_past_due(instant("2024-02-07T16:00:00+00:00")) == 1  # 2024-02-08 00:00 in Shanghai
    assert r.local_date(instant("2024-02-07T15:59:59+00:00")) == date(2024, 2, 7)


# ---- start_follow_up and record_contact -------------------------------------


def test_follow_up_starts_on_a_due_receivable():
    r = given_in("due")
    events = when(r, start_follow_up(channel="phone", note="first call"))
    assert names(events) == ["FollowUpStarted"]
    assert (events[0].channel, events[0].note) == ("phone", "first call")
    assert r.state == "following_up"


def test_follow_up_through_an_unknown_channel_is_refused():
    then_refused(given_in("due"), start_follow_up(channel="fax"), "field.choice")


def test_a_contact_on_a_due_receivable_starts_follow_up():
    r = given_in("due")
    events = when(r, record_contact(outcome="no_answer"))
    assert names(events) == ["ContactRecorded"]
    assert events[0].state_after == "following_up"
    assert r.state == "following_up"


@pytest.mark.parametrize("state", ["issued", "reminded", "following_up", "promised", "overdue_escalated", "legal"])
def test_a_contact_elsewhere_keeps_the_state(state):
    r = given_in(state)
    assert names(when(r, record_contact())) == ["ContactRecorded"]
    assert r.state == state


def test_a_contact_records_what_was_said_and_what_comes_next():
    r = given_in("due")
    (event,) = when(
        r,
        record_contact(
            channel="wechat",
            outcome="promised",
            note="will pay next week",
            customer_attitude="cooperative",
            next_step="check on 2024-03-01",
            promised_on=date(2024, 3, 1),
        ),
    )
    assert (event.channel, event.outcome, event.note) == ("wechat", "promised", "will pay next week")
    assert (event.customer_attitude, event.next_step, event.promised_on) == (
        "cooperative",
        "check on 2024-03-01",
        date(2024, 3, 1),
    )


def test_an_acknowledging_contact_remembers_when_the_debt_was_acknowledged():
    r = given_in("due")
    assert r.last_acknowledged_at is None
    when(r, record_contact(outcome="acknowledged", at="2024-02-21T03:00:00+00:00"))
    assert r.last_acknowledged_at == instant("2024-02-21T03:00:00+00:00")


@pytest.mark.parametrize("note", ["", "  ", None])
def test_a_contact_needs_a_note(note):
    err = then_refused(given_in("due"), record_contact(note=note), "field.required")
    assert err.field == "note"


@pytest.mark.parametrize(("field", "value"), [("channel", "telepathy"), ("outcome", "maybe")])
def test_a_contact_with_an_unknown_channel_or_outcome_is_refused(field, value):
    err = then_refused(given_in("due"), record_contact(**{field: value}), "field.choice")
    assert err.field == field


# ---- promise_to_pay ---------------------------------------------------------


@pytest.mark.parametrize("state", ["due", "following_up", "overdue_escalated"])
def test_a_promise_to_pay_moves_the_receivable_to_promised(state):
    r = given_in(state)
    events = when(r, promise_to_pay("400", promised_on=date(2024, 3, 1)))
    assert names(events) == ["PromiseMade"]
    assert events[0].amount == D("400.00")
    assert r.state == "promised"
    assert r.promise == {"amount": D("400.00"), "promised_on": date(2024, 3, 1), "paid_before": D("0.00")}
    assert r.balance == D("1000.00"), "a promise is not a payment"


def test_a_promise_of_the_whole_balance_is_accepted():
    r = given_in("due")
    when(r, promise_to_pay(AMOUNT))
    assert r.promise["amount"] == r.balance


def test_a_promise_above_the_balance_is_refused():
    r = given_in("due", record_payment("700.00"))
    err = then_refused(r, promise_to_pay("300.01"), "promise.exceeds_balance")
    assert err.field == "amount"


def test_a_promise_dated_in_the_past_is_refused():
    err = then_refused(given_in("due"), promise_to_pay(promised_on=date(2024, 2, 19)), "promise.date_in_past")
    assert err.field == "promised_on"


def test_a_promise_for_today_in_the_customers_time_zone_is_accepted():
    # 2024-02-20T17:00Z is already 2024-02-21 in Shanghai
    r = given_in("due")
    then_refused(r, promise_to_pay(promised_on=date(2024, 2, 20), at="2024-02-20T17:00:00+00:00"), "promise.date_in_past")
    assert names(when(r, promise_to_pay(promised_on=date(2024, 2, 21), at="2024-02-20T17:00:00+00:00"))) == [
        "PromiseMade"
    ]


def test_a_promised_amount_must_be_decimal_money():
    then_refused(given_in("due"), promise_to_pay(400.0), "money.not_decimal")
    then_refused(given_in("due"), promise_to_pay("400.001"), "money.precision")


# ---- agree_installment_plan -------------------------------------------------


@pytest.mark.parametrize("state", ["due", "following_up", "overdue_escalated"])
def test_an_installment_plan_for_the_balance_moves_the_receivable_to_promised(state):
    r = given_in(state)
    events = when(
        r,
        agree_installment_plan(
            [{"due_on": date(2024, 3, 1), "amount": "600"}, {"due_on": date(2024, 4, 1), "amount": "400"}]
        ),
    )
    assert names(events) == ["InstallmentPlanAgreed"]
    assert events[0].installments == [
        {"due_on": date(2024, 3, 1), "amount": D("600.00")},
        {"due_on": date(2024, 4, 1), "amount": D("400.00")},
    ]
    assert r.state == "promised"
    assert r.installment_plan["installments"] == events[0].installments
    assert r.promise is None


def test_an_installment_plan_after_a_partial_payment_covers_the_remaining_balance():
    r = given_in("due", record_payment("250.00"))
    plan = [{"due_on": date(2024, 3, 1), "amount": "375"}, {"due_on": date(2024, 4, 1), "amount": "375"}]
    assert names(when(r, agree_installment_plan(plan))) == ["InstallmentPlanAgreed"]
    assert r.installment_plan["paid_before"] == D("250.00")


@pytest.mark.parametrize("amounts", [("500", "499.98"), ("500", "500"), ("1000",), ("999.98",)])
def test_installments_that_do_not_sum_to_the_balance_are_refused(amounts):
    r = given_in("due", record_payment("0.01"))  # balance 999.99
    plan = [{"due_on": date(2024, 3, i + 1), "amount": a} for i, a in enumerate(amounts)]
    then_refused(r, agree_installment_plan(plan), "installments.sum")


@pytest.mark.parametrize(
    "dates", [(date(2024, 4, 1), date(2024, 3, 1)), (date(2024, 3, 1), date(2024, 3, 1))], ids=["backwards", "same_day"]
)
def test_installment_dates_must_be_strictly_increasing(dates):
    plan = [{"due_on": d, "amount": "500"} for d in dates]
    err = then_refused(given_in("due"), agree_installment_plan(plan), "installments.order")
    assert err.field == "installments[1].due_on"


def test_an_installment_dated_in_the_past_is_refused():
    plan = [{"due_on": date(2024, 2, 19), "amount": "500"}, {"due_on": date(2024, 3, 1), "amount": "500"}]
    err = then_refused(given_in("due"), agree_installment_plan(plan), "installments.date_in_past")
    assert err.field == "installments[0].due_on"


def test_an_installment_plan_needs_at_least_one_installment():
    then_refused(given_in("due"), agree_installment_plan([]), "installments.empty")


def test_an_installment_plan_needs_a_reason():
    then_refused(given_in("due"), agree_installment_plan(reason=""), "field.required")


def test_an_installment_amount_with_too_many_decimals_names_its_position():
    plan = [{"due_on": date(2024, 3, 1), "amount": "500"}, {"due_on": date(2024, 4, 1), "amount": "499.999"}]
    err = then_refused(given_in("due"), agree_installment_plan(plan), "money.precision")
    assert err.field == "installments[1].amount"


# ---- break_promise ----------------------------------------------------------


def test_an_unkept_promise_is_broken_and_the_receivable_escalates():
    r = given_in("promised")
    events = when(r, break_promise(at="2024-03-05T02:00:00+00:00"))
    assert names(events) == ["PromiseBroken"]
    assert r.state == "overdue_escalated"
    assert r.promise is None and r.installment_plan is None


def test_a_partly_kept_promise_can_be_broken():
    r = given_in("due", promise_to_pay("400"), record_payment("399.99"))
    assert names(when(r, break_promise(at="2024-03-05T02:00:00+00:00"))) == ["PromiseBroken"]


def test_a_promise_covered_by_payments_is_kept_and_can_no_longer_be_broken():
    r = given_in("due", promise_to_pay("400"), record_payment("150"), record_payment("250"))
    assert r.state == "following_up"
    then_not_allowed(r, break_promise(at="2024-03-05T02:00:00+00:00"))


def test_a_covered_promise_parked_before_the_fix_cannot_be_broken():
    r = given_in("due", promise_to_pay("400"), record_payment_before_the_fix("400"))
    assert r.state == "promised"
    then_refused(r, break_promise(at="2024-03-05T02:00:00+00:00"), "promise.not_broken")


def test_payments_made_before_the_promise_do_not_count_towards_it():
    r = given_in("due", record_payment("600"), promise_to_pay("400"))
    assert r.paid_towards_promise() == D("0")
    assert names(when(r, break_promise(at="2024-03-05T02:00:00+00:00"))) == ["PromiseBroken"]


def test_an_installment_plan_short_of_its_total_can_be_broken():
    plan = [{"due_on": date(2024, 3, 1), "amount": "500"}, {"due_on": date(2024, 4, 1), "amount": "499.99"}]
    r = given_in("due", record_payment("0.01"), agree_installment_plan(plan), record_payment("500"), record_payment("499.98"))
    assert r.state == "promised"
    assert names(when(r, break_promise(at="2024-04-05T02:00:00+00:00"))) == ["PromiseBroken"]
    assert r.state == "overdue_escalated"


def test_an_installment_plan_is_covered_only_by_payments_made_under_it():
    r = given_in("due", record_payment("200"), agree_installment_plan([{"due_on": date(2024, 3, 1), "amount": "800"}]))
    assert r.paid_towards_promise() == 0
    assert r.is_promise_covered(extra=D("800.00"))
    assert not r.is_promise_covered(extra=D("799.99"))


def test_breaking_a_promise_needs_a_reason():
    then_refused(given_in("promised"), break_promise(reason=""), "field.required")


def test_a_promise_cannot_be_broken_before_its_date_and_grace_have_passed():
    r = given_in("promised")  # promised for 2024-03-01, grace 3 days: broken from 2024-03-05 in Shanghai
    then_refused(r, break_promise(at=LATER), "promise.not_broken")
    then_refused(r, break_promise(at="2024-03-04T15:59:59+00:00"), "promise.not_broken")
    assert names(when(r, break_promise(at="2024-03-04T16:00:00+00:00"))) == ["PromiseBroken"]


def test_an_installment_plan_is_not_broken_while_each_installment_due_is_paid():
    plan = [{"due_on": date(2024, 3, 1), "amount": "400"}, {"due_on": date(2024, 4, 1), "amount": "600"}]
    r = given_in("due", agree_installment_plan(plan), record_payment("400", at="2024-03-01T02:00:00+00:00"))
    then_refused(r, break_promise(at="2024-03-20T02:00:00+00:00"), "promise.not_broken")
    then_refused(r, break_promise(at="2024-04-04T02:00:00+00:00"), "promise.not_broken")
    assert names(when(r, break_promise(at="2024-04-05T02:00:00+00:00"))) == ["PromiseBroken"]


def test_an_installment_plan_is_broken_when_the_first_installment_is_missed():
    plan = [{"due_on": date(2024, 3, 1), "amount": "400"}, {"due_on": date(2024, 4, 1), "amount": "600"}]
    r = given_in("due", agree_installment_plan(plan), record_payment("399.99", at="2024-03-01T02:00:00+00:00"))
    assert names(when(r, break_promise(at="2024-03-05T02:00:00+00:00"))) == ["PromiseBroken"]


# ---- keep_promise: a kept promise returns the receivable to collection ------

# The scenario of issue 11: 1,000.00 due 7 Feb, in follow-up; 400.00 promised for
# next week and paid before that date. 30 days past due is 8 March, 00:00 in Shanghai.
ESCALATION_MOMENT = instant("2024-03-07T16:00:00+00:00")


def test_a_payment_that_covers_a_partial_promise_keeps_it_and_returns_the_receivable_to_follow_up():
    r = given_in("following_up", promise_to_pay("400.00", promised_on=date(2024, 2, 27)))
    events = when(r, record_payment("400.00", at="2024-02-22T02:00:00+00:00"))
    assert names(events) == ["PaymentRecorded", "PromiseKept"]
    paid, kept = events
    assert paid.state_after == "promised"
    assert kept.state_after == lifecycle.next_state("promised", "keep_promise") == "following_up"
    assert (kept.amount, kept.paid_towards) == (D("400.00"), D("400.00"))
    assert kept.prev_hash == paid.hash, "both events are links of the one hash chain"
    assert (r.state, r.balance, r.promise, r.installment_plan) == ("following_up", D("600.00"), None, None)
    timers = schedule.owed(r, POLICY, kept.timestamp)
    assert [(t.kind, t.at) for t in timers][0] == ("escalate", ESCALATION_MOMENT)
    for command in ("escalate", "promise_to_pay", "agree_installment_plan"):
        assert command in r.allowed_commands


def test_a_promise_kept_after_the_escalation_moment_owes_escalation_at_once():
    r = given_in("following_up", promise_to_pay("400.00", promised_on=date(2024, 3, 15), at="2024-03-01T02:00:00+00:00"))
    when(r, record_payment("400.00", at="2024-03-12T02:00:00+00:00"))
    assert r.state == "following_up"
    escalation = schedule.owed(r, POLICY, instant("2024-03-12T02:00:00+00:00"))[0]
    assert (escalation.kind, escalation.at) == ("escalate", ESCALATION_MOMENT)  # past: the next tick fires it


def test_payments_short_of_the_promise_leave_it_open():
    r = given_in("following_up", promise_to_pay("400.00"))
    assert names(when(r, record_payment("399.99"))) == ["PaymentRecorded"]
    assert r.state == "promised" and r.promise is not None


def test_a_payment_of_the_whole_balance_under_a_promise_settles_with_one_event():
    r = given_in("following_up", promise_to_pay("400.00"))
    assert names(when(r, record_payment(AMOUNT))) == ["PaymentRecorded"]
    assert r.state == "settled" and r.promise is None


def test_a_payment_made_before_the_promise_does_not_keep_it():
    r = given_in("due", record_payment("600"), promise_to_pay("400"))
    assert names(when(r, record_payment("399.99"))) == ["PaymentRecorded"]
    assert r.state == "promised"


def test_a_kept_promise_replays_to_the_same_receivable():
    r, events = story(*path_to("following_up"), promise_to_pay("400.00"), record_payment("400.00"))
    rebuilt = replay(events)
    assert (rebuilt.state, rebuilt.balance, rebuilt.promise, rebuilt.version) == ("following_up", D("600.00"), None, r.version)
    assert rebuilt.last_hash == r.last_hash


def test_keeping_a_promise_frees_a_receivable_parked_before_the_fix():
    r = given_in("following_up", promise_to_pay("400.00"), record_payment_before_the_fix("400.00"))
    assert r.state == "promised" and r.is_promise_covered()
    events = when(r, keep_promise())
    assert names(events) == ["PromiseKept"]
    assert (events[0].amount, events[0].paid_towards, events[0].actor_id) == (D("400.00"), D("400.00"), SCHEDULER.id)
    assert (r.state, r.promise) == ("following_up", None)


def test_keeping_a_promise_is_refused_while_payments_do_not_cover_it():
    then_refused(given_in("promised"), keep_promise(), "promise.not_kept")
    then_refused(given_in("promised", record_payment("399.99")), keep_promise(), "promise.not_kept")


def test_keeping_a_promise_is_refused_outside_promised():
    then_not_allowed(given_in("following_up"), keep_promise())


def test_a_dispute_resolution_never_keeps_a_promise_but_the_payment_that_covers_it_does():
    # A resolution changes what is owed, not what was paid since the promise nor what it
    # promised: 300 of 400 paid, the amount lowered to 700 (balance 400), still promised.
    r = given_in("following_up", promise_to_pay("400.00"), record_payment("300.00"), raise_dispute())
    assert names(when(r, resolve_dispute("700.00"))) == ["DisputeResolved"]
    assert (r.state, r.balance) == ("promised", D("400.00"))
    assert names(when(r, record_payment("100.00"))) == ["PaymentRecorded", "PromiseKept"]
    assert (r.state, r.balance) == ("following_up", D("300.00"))


def test_a_dispute_resolution_that_settles_ends_the_promise_with_one_event():
    r = given_in("following_up", promise_to_pay("400.00"), record_payment("300.00"), raise_dispute())
    assert names(when(r, resolve_dispute("300.00"))) == ["DisputeResolved"]
    assert r.state == "settled"


# ---- escalate and refer_to_legal --------------------------------------------


@pytest.mark.parametrize("state", ["due", "following_up"])
def test_an_overdue_receivable_escalates(state):
    r = given_in(state)
    events = when(r, escalate(reason="no payment after 30 days"))
    assert names(events) == ["Escalated"]
    assert events[0].reason == "no payment after 30 days"
    assert r.state == "overdue_escalated"


def test_escalation_needs_a_reason():
    then_refused(given_in("due"), escalate(reason=" "), "field.required")


def test_an_escalated_receivable_is_referred_to_legal():
    r = given_in("overdue_escalated")
    assert names(when(r, refer_to_legal())) == ["ReferredToLegal"]
    assert r.state == "legal"


def test_a_receivable_that_is_only_due_cannot_go_to_legal():
    err = then_not_allowed(given_in("due"), refer_to_legal())
    assert "escalate" in err.allowed


def test_a_legal_referral_needs_a_reason():
    then_refused(given_in("overdue_escalated"), refer_to_legal(reason=""), "field.required")


# ---- record_payment ---------------------------------------------------------


def test_a_partial_payment_keeps_the_state_and_lowers_the_balance():
    r = given_in("following_up")
    events = when(r, record_payment("300.00", reference="BANK-1", method="alipay"))
    assert names(events) == ["PaymentRecorded"]
    e = events[0]
    assert (e.amount, e.method, e.reference, e.state_after) == (D("300.00"), "alipay", "BANK-1", "following_up")
    assert r.state == "following_up"
    assert r.balance == D("700.00")
    assert r.paid == D("300.00")


@pytest.mark.parametrize("state", NON_FINAL)
def test_paying_the_whole_balance_settles_the_receivable_from_any_open_state(state):
    r = given_in(state)
    events = when(r, record_payment(str(r.balance)))
    assert events[0].state_after == "settled"
    assert r.state == "settled"
    assert r.balance == 0


def test_the_last_of_several_payments_settles_and_clears_the_promise():
    r = given_in("promised", record_payment("399.99"))
    assert r.state == "promised" and r.promise is not None
    when(r, record_payment("600.01"))
    assert r.state == "settled"
    assert r.promise is None and r.installment_plan is None


def test_an_overpayment_is_refused():
    r = given_in("due", record_payment("999.99"))
    err = then_refused(r, record_payment("0.02"), "payment.overpayment")
    assert err.field == "amount"


def test_a_payment_reference_can_only_be_recorded_once():
    r = given_in("due", record_payment("10", reference="BANK-1"))
    err = then_refused(r, record_payment("10", reference="BANK-1"), "payment.duplicate_reference")
    assert err.field == "reference"


def test_a_payment_dated_in_the_future_is_refused():
    err = then_refused(given_in("due"), record_payment(paid_on=date(2024, 2, 21)), "payment.future_date")
    assert err.field == "paid_on"


def test_a_payments_date_is_checked_against_the_customers_local_date():
    # 2024-02-20T17:00Z is already 2024-02-21 in Shanghai...
    r = given_in("due")
    assert names(when(r, record_payment(paid_on=date(2024, 2, 21), at="2024-02-20T17:00:00+00:00"))) == [
        "PaymentRecorded"
    ]
    # ...and 07:00Z is still 2024-02-19 in Los Angeles.
    r = given(issue(timezone="America/Los_Angeles"), fall_due(at="2024-02-07T08:00:00+00:00"))
    then_refused(r, record_payment(paid_on=date(2024, 2, 20), at="2024-02-20T07:00:00+00:00"), "payment.future_date")


@pytest.mark.parametrize(
    ("overrides", "rule_id"),
    [
        ({"amount": 100.0}, "money.not_decimal"),
        ({"amount": "0"}, "money.positive"),
        ({"amount": "-5"}, "money.positive"),
        ({"amount": "10.001"}, "money.precision"),
        ({"amount": "NaN"}, "money.format"),
        ({"method": "barter"}, "field.choice"),
        ({"reference": ""}, "field.required"),
    ],
)
def test_a_malformed_payment_is_refused(overrides, rule_id):
    then_refused(given_in("due"), record_payment().with_(**overrides), rule_id)


def test_a_payment_is_recorded_while_a_dispute_is_open():
    r = given_in("due", raise_dispute())
    assert names(when(r, record_payment("100"))) == ["PaymentRecorded"]
    assert r.is_disputed


# ---- write-off --------------------------------------------------------------


@pytest.mark.parametrize("state", ["overdue_escalated", "legal"])
def test_a_write_off_request_keeps_the_state_and_names_the_requester(state):
    r = given_in(state)
    events = when(r, request_write_off(reason="customer insolvent", by=COLLECTOR))
    assert names(events) == ["WriteOffRequested"]
    assert r.state == state
    assert r.write_off_request == {"requested_by": COLLECTOR.id, "reason": "customer insolvent"}


def test_a_second_write_off_request_is_refused_while_one_is_pending():
    r = given_in("overdue_escalated", request_write_off())
    then_refused(r, request_write_off(by=OTHER_COLLECTOR), "write_off.already_requested")


def test_a_write_off_request_needs_a_reason():
    then_refused(given_in("overdue_escalated"), request_write_off(reason=""), "field.required")


@pytest.mark.parametrize("state", ["overdue_escalated", "legal"])
def test_an_approved_write_off_writes_off_the_remaining_balance(state):
    r = given_in(state, record_payment("250"), request_write_off(by=COLLECTOR))
    events = when(r, approve_write_off(by=SUPERVISOR, note="approved"))
    assert names(events) == ["WriteOffApproved"]
    assert events[0].amount == D("750.00")
    assert r.state == "written_off"
    assert r.written_off_amount == D("750.00")
    assert r.write_off_request is None


def test_a_write_off_cannot_be_approved_without_a_request():
    then_refused(given_in("overdue_escalated"), approve_write_off(), "write_off.not_requested")


def test_the_requester_cannot_approve_their_own_write_off():
    r = given_in("overdue_escalated", request_write_off(by=SUPERVISOR))
    then_refused(r, approve_write_off(by=SUPERVISOR), "write_off.four_eyes")
    # the same person under another role is still the same person
    then_refused(r, approve_write_off(by=Actor(SUPERVISOR.id, "finance_manager")), "write_off.four_eyes")


def test_a_write_off_is_not_possible_before_escalation():
    then_not_allowed(given_in("following_up"), request_write_off())


# ---- disputes ---------------------------------------------------------------


@pytest.mark.parametrize("state", NON_FINAL)
def test_a_dispute_can_be_raised_in_any_open_state_and_keeps_it(state):
    r = given_in(state)
    events = when(r, raise_dispute(reason="wrong quantity", by=COLLECTOR))
    assert names(events) == ["DisputeRaised"]
    assert r.state == state
    assert r.is_disputed
    assert r.dispute["reason"] == "wrong quantity" and r.dispute["raised_by"] == COLLECTOR.id


def test_only_one_dispute_is_open_at_a_time():
    then_refused(given_in("due", raise_dispute()), raise_dispute(), "dispute.already_open")


def test_a_dispute_needs_a_reason():
    then_refused(given_in("due"), raise_dispute(reason=""), "field.required")


def test_a_dispute_resolved_without_adjustment_leaves_the_amount():
    r = given_in("due", raise_dispute())
    events = when(r, resolve_dispute(resolution="customer withdrew"))
    assert names(events) == ["DisputeResolved"]
    assert events[0].adjusted_amount is None
    assert r.state == "due"
    assert not r.is_disputed
    assert r.balance == D("1000.00")


def test_a_dispute_resolved_with_a_lower_amount_lowers_the_balance():
    r = given_in("due", record_payment("100"), raise_dispute())
    events = when(r, resolve_dispute("800"))
    assert events[0].adjusted_amount == D("800.00")
    assert r.amount == D("1000.00"), "the invoiced amount is history"
    assert r.adjustment == D("200.00")
    assert r.balance == D("700.00")
    assert r.state == "due"


def test_a_dispute_resolution_may_never_raise_the_amount_owed():
    then_refused(given_in("due", raise_dispute()), resolve_dispute("1000.01"), "dispute.adjustment_increase")


def test_a_later_dispute_cannot_restore_an_amount_that_was_lowered():
    r = given_in("due", raise_dispute(), resolve_dispute("800"), raise_dispute())
    then_refused(r, resolve_dispute("900"), "dispute.adjustment_increase")
    when(r, resolve_dispute("700"))
    assert r.balance == D("700.00")


def test_a_dispute_resolution_may_not_lower_the_amount_below_what_is_paid():
    r = given_in("due", record_payment("300"), raise_dispute())
    then_refused(r, resolve_dispute("299.99"), "dispute.adjustment_below_paid")


def test_lowering_the_amount_to_what_is_paid_settles_the_receivable():
    r = given_in("overdue_escalated", record_payment("300"), raise_dispute())
    events = when(r, resolve_dispute("300"))
    assert events[0].state_after == "settled"
    assert r.state == "settled" and r.balance == 0


def test_a_dispute_resolved_to_nothing_owed_settles_an_unpaid_receivable():
    r = given_in("issued", raise_dispute())
    when(r, resolve_dispute("0"))
    assert r.state == "settled" and r.balance == 0


def test_a_dispute_adjustment_must_be_money_in_the_receivables_currency():
    r = given_in("due", raise_dispute())
    then_refused(r, resolve_dispute(800.0), "money.not_decimal")
    then_refused(r, resolve_dispute("800.001"), "money.precision")
    then_refused(r, resolve_dispute("-1"), "money.positive")


def test_there_is_nothing_to_resolve_without_an_open_dispute():
    then_refused(given_in("due"), resolve_dispute(), "dispute.not_open")


def test_a_dispute_resolution_needs_a_text():
    then_refused(given_in("due", raise_dispute()), resolve_dispute(resolution=""), "field.required")


# ---- assign_collector -------------------------------------------------------


@pytest.mark.parametrize("state", NON_FINAL)
def test_a_collector_is_assigned_in_any_open_state(state):
    r = given_in(state)
    assert names(when(r, assign_collector("collector:bob"))) == ["CollectorAssigned"]
    assert r.collector == "collector:bob"
    assert r.state == state


def test_assigning_nobody_is_refused():
    then_refused(given_in("due"), assign_collector(""), "field.required")


# ---- recoveries after a write-off -------------------------------------------


def test_a_recovery_after_a_write_off_is_recorded_and_the_receivable_stays_written_off():
    r = given_in("written_off")
    events = when(r, record_recovery("200"))
    assert names(events) == ["RecoveryRecorded"]
    assert r.state == "written_off"
    assert r.recovered == D("200.00")


def test_recoveries_may_not_exceed_what_was_written_off():
    r = given_in("overdue_escalated", record_payment("400"), request_write_off(), approve_write_off())
    assert r.written_off_amount == D("600.00")
    when(r, record_recovery("500"))
    err = then_refused(r, record_recovery("100.01"), "recovery.exceeds_written_off")
    assert err.field == "amount"
    when(r, record_recovery("100"))
    assert r.recovered == r.written_off_amount


def test_a_recovery_cannot_reuse_a_payment_reference():
    r = given_in("overdue_escalated", record_payment("100", reference="BANK-9"), request_write_off(), approve_write_off())
    then_refused(r, record_recovery("10", reference="BANK-9"), "payment.duplicate_reference")


def test_a_recovery_dated_in_the_future_is_refused():
    then_refused(given_in("written_off"), record_recovery(paid_on=date(2024, 3, 1)), "payment.future_date")


# ---- limitation period -----------------------------------------------------
# Due 2024-02-07 with three years of limitation from the day after (art. 188): it
# lapses on 2027-02-08 and the warning window (90 days) opens on 2026-11-10, Shanghai time.


def test_a_limitation_warning_is_recorded_once_the_warning_window_opens():
    r = given_in("due")
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 8)
    assert r.limitation_warning_on(POLICY) == date(2026, 11, 10)
    then_refused(r, warn_limitation(at="2026-11-09T15:59:59+00:00"), "limitation.not_yet")
    events = when(r, warn_limitation(at="2026-11-09T16:00:00+00:00"))
    assert names(events) == ["LimitationWarned"]
    assert events[0].lapses_on == date(2027, 2, 8)
    assert r.state == "due"


def test_a_limitation_warning_is_not_repeated_for_the_same_lapse_date():
    r = given_in("overdue_escalated", warn_limitation())
    then_refused(r, warn_limitation(at="2027-01-01T02:00:00+00:00"), "limitation.warned")


def test_a_payment_restarts_the_limitation_period_from_its_date():
    r = given_in("due", record_payment("100", paid_on=date(2024, 2, 20)))
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 20)


def test_an_acknowledged_debt_restarts_the_limitation_period():
    r = given_in("due", record_contact(outcome="acknowledged", at="2024-03-05T01:30:00+00:00"))
    assert r.limitation_lapses_on(POLICY) == date(2027, 3, 5)  # the local date in Shanghai


def test_a_contact_that_reaches_nobody_leaves_the_limitation_period():
    r = given_in("due", record_contact(outcome="no_answer", at="2024-03-05T01:30:00+00:00"))
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 8)


def test_a_limitation_period_from_the_29th_of_february_lapses_on_the_28th():
    r = given(issue(due_on=date(2024, 2, 28)))  # the period runs from the day after: 29 February
    assert r.limitation_period.started_on == date(2024, 2, 29)
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 28)


# ---- final states and refusals ----------------------------------------------


@pytest.mark.parametrize("command", [c for c in lifecycle.COMMANDS if c not in lifecycle.AFTERCARE_COMMANDS])
def test_a_settled_receivable_refuses_every_command_but_complaints(command):
    r = given_in("settled")
    err = then_not_allowed(r, sample_call(command))
    assert err.allowed == ["record_complaint", "resolve_complaint"]


@pytest.mark.parametrize(
    "command", [c for c in lifecycle.COMMANDS if c != "record_recovery" and c not in lifecycle.AFTERCARE_COMMANDS]
)
def test_a_written_off_receivable_refuses_everything_but_recoveries_and_complaints(command):
    err = then_not_allowed(given_in("written_off"), sample_call(command))
    assert set(err.allowed) == {"record_recovery", "record_complaint", "resolve_complaint"}


@pytest.mark.parametrize("state", NON_FINAL)
def test_a_recovery_is_refused_while_the_receivable_is_open(state):
    then_not_allowed(given_in(state), record_recovery())


@pytest.mark.parametrize(
    ("state", "command"),
    [(s, c) for s in lifecycle.STATES for c in lifecycle.COMMANDS if c not in lifecycle.allowed_commands(s)],
)
def test_the_receivable_refuses_every_command_its_lifecycle_refuses(state, command):
    err = then_not_allowed(given_in(state), sample_call(command))
    assert err.allowed == lifecycle.allowed_commands(state)


# Commands whose domain preconditions need one more step first.
PRECONDITIONS = {
    "approve_write_off": [request_write_off()],
    "resolve_dispute": [raise_dispute()],
    "keep_promise": [record_payment_before_the_fix("400.00")],  # covered, still promised
    "release_hold": [hold()],
    "resolve_complaint": [record_complaint()],
    "waive_charges": [accrue_charges()],  # charges to waive
    "approve_charges_waiver": [accrue_charges(), waive_charges("50.05")],  # above the threshold: waits for approval
    "accept_installment_proposal": [propose_installment_plan()],
}
#: Where a customer's proposal is waiting, in each state that may decline one (made after the
#: due date, it may outlive a promise or a referral to legal).
PROPOSED_IN = {
    "due": [issue(), fall_due(), propose_installment_plan()],
    "following_up": [issue(), fall_due(), start_follow_up(), propose_installment_plan()],
    "promised": [issue(), fall_due(), propose_installment_plan(), promise_to_pay()],
    "overdue_escalated": [issue(), fall_due(), escalate(), propose_installment_plan()],
    "legal": [issue(), fall_due(), escalate(), propose_installment_plan(), refer_to_legal()],
}
#: Commands that record two events: the customer's proposal accepted, then the plan agreed.
TWO_EVENTS = {"accept_installment_proposal"}


@pytest.mark.parametrize(
    ("state", "command"),
    [(s, c) for s in lifecycle.STATES for c in lifecycle.allowed_commands(s)],
)
def test_the_receivable_accepts_every_command_its_lifecycle_allows(state, command):
    if command == "decline_installment_proposal":
        r = given(*PROPOSED_IN[state])
    else:
        r = given_in(state, *PRECONDITIONS.get(command, []))
    if command == "remind_installment":  # promised by a plan, not a single promise
        r = given(issue(), fall_due(), agree_installment_plan())
    events = when(r, sample_call(command))
    assert len(events) == (2 if command in TWO_EVENTS else 1)
    assert r.state == events[-1].state_after == lifecycle.next_state(state, command)


def test_the_lifecycle_is_checked_before_the_commands_own_rules():
    # A malformed payment on a settled receivable is refused for the state, not the amount.
    then_not_allowed(given_in("settled"), record_payment(100.0))
    then_not_allowed(given_in("settled"), resolve_dispute(resolution=""))
    then_not_allowed(given_in("issued"), refer_to_legal(reason=""))


@pytest.mark.parametrize(
    ("steps", "refused", "error"),
    [
        (path_to("due"), record_payment("1000.01"), RuleViolationError),
        (path_to("due"), promise_to_pay(promised_on=date(2020, 1, 1)), RuleViolationError),
        (path_to("issued"), fall_due(at="2024-01-10T00:00:00+00:00"), RuleViolationError),
        (path_to("overdue_escalated") + [request_write_off()], approve_write_off(by=COLLECTOR), RuleViolationError),
        (path_to("settled"), record_payment("1"), CommandNotAllowedError),
        (path_to("written_off"), raise_dispute(), CommandNotAllowedError),
        (path_to("issued"), escalate(), CommandNotAllowedError),
    ],
    ids=["overpayment", "past_promise", "not_yet_due", "four_eyes", "settled", "written_off", "not_escalable"],
)
def test_a_refused_command_leaves_the_aggregate_unchanged(steps, refused, error):
    r = given(*steps)
    version, state, balance = r.version, r.state, r.balance
    snapshot = copy.deepcopy(r)
    with pytest.raises(error):
        refused.run(r)
    assert (r.version, r.state, r.balance) == (version, state, balance)
    assert r == snapshot
    assert r.collect_events() == []


# ---- the balance invariant --------------------------------------------------


@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(st.lists(st.integers(min_value=1, max_value=120_000), max_size=10))
def test_random_payments_never_drive_the_balance_below_zero(cents):
    r = given_in("due")
    accepted = D(0)
    for i, c in enumerate(cents):
        amount = D(c).scaleb(-2)
        payment = record_payment(str(amount), reference=f"P-{i}")
        if r.state == "settled":
            then_not_allowed(r, payment)
        elif amount > r.balance:
            then_refused(r, payment, "payment.overpayment")
        else:
            when(r, payment)
            accepted += amount
        assert r.balance == D(AMOUNT) - accepted
        assert r.balance >= 0
        assert (r.state == "settled") == (r.balance == 0)


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(min_value=1, max_value=60_000)),
        st.tuples(st.just("adjust"), st.integers(min_value=0, max_value=110_000)),
    ),
    max_size=10,
)


@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(_operations)
def test_balance_is_amount_minus_payments_minus_adjustments_and_never_negative(operations):
    r = given_in("overdue_escalated")
    owed, paid = D(AMOUNT), D(0)  # a model of what the balance must be
    for i, (op, c) in enumerate(operations):
        value = D(c).scaleb(-2)
        if r.state == "settled":
            break
        if op == "pay":
            command = record_payment(str(value), reference=f"P-{i}")
            if value > owed - paid:
                then_refused(r, command, "payment.overpayment")
            else:
                when(r, command)
                paid += value
        else:
            when(r, raise_dispute())
            command = resolve_dispute(str(value))
            if value > owed:
                then_refused(r, command, "dispute.adjustment_increase")
            elif value < paid:
                then_refused(r, command, "dispute.adjustment_below_paid")
            else:
                when(r, command)
                owed = value
            if r.is_disputed:
                when(r, resolve_dispute())
        assert r.paid == paid
        assert r.amount - r.adjustment == owed
        assert r.balance == owed - paid >= 0
        assert (r.state == "settled") == (r.balance == 0)
