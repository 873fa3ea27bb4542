"""The limitation period (PRC Civil Code arts. 188, 189, 195): one computation, read by
the receivable and by the compliance rule `limitation.no_action`.

The standard story (helpers): due Wednesday 2024-02-07 in Shanghai (UTC+8), so the
period starts on 2024-02-08 and, three years long, lapses on 2027-02-08. LATER is
2024-02-20 10:00 in Shanghai.
"""

from __future__ import annotations

import copy
from datetime import date, datetime

import pytest

from collections_es.domain import limitation
from collections_es.domain.compliance import fact_of, findings_as_of, limitation_periods
from collections_es.domain.schedule import owed
from projections.compliance import _decode, _encode

from .helpers import (
    LATER,
    POLICY,
    agree_installment_plan,
    break_promise,
    fall_due,
    given_in,
    issue,
    names,
    path_to,
    promise_to_pay,
    record_contact,
    record_delivery,
    record_payment,
    record_proceedings,
    replay,
    start_follow_up,
    story,
    then_not_allowed,
    then_refused,
    warn_limitation,
    when,
)

DUE_PERIOD_START = date(2024, 2, 8)  # the day after due (art. 188)


def interruption_of(r):
    return r.limitation_period.last_interruption


# ---- the start ------------------------------------------------------------------


def test_the_period_runs_from_the_day_after_due_with_no_interruption():
    r = given_in("due")
    assert r.limitation_period == limitation.Period(DUE_PERIOD_START, None)
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 8)


def test_an_interruption_on_the_29th_of_february_runs_to_the_28th_three_years_on():
    r = given_in("due", record_payment(paid_on=date(2024, 2, 29), at="2024-03-01T02:00:00+00:00"))
    assert r.limitation_period.started_on == date(2024, 2, 29)
    assert r.limitation_lapses_on(POLICY) == date(2027, 2, 28)


# ---- each kind of interruption ----------------------------------------------------


@pytest.mark.parametrize("template", ["first_dunning", "broken_promise", "dunning", "final_notice", "lawyer"])
def test_a_delivered_demand_restarts_the_period_on_the_day_it_was_delivered(template):
    r = given_in("following_up")
    events = when(r, record_delivery(template=template, at="2024-03-05T02:00:00+00:00"))
    assert names(events) == ["DeliveryRecorded"]
    assert r.state == "following_up"
    assert r.limitation_period.started_on == date(2024, 3, 5)
    assert interruption_of(r) == {"kind": "demand", "on": date(2024, 3, 5), "version": r.version}
    assert r.limitation_lapses_on(POLICY) == date(2027, 3, 5)


def test_the_day_of_a_delivery_is_the_customers_day_when_it_was_delivered_not_when_it_was_recorded():
    # Delivered at 04:00 on 20 February in Shanghai (20:00Z on the 19th), recorded later that morning.
    r = given_in("following_up", record_delivery(delivered_at="2024-02-19T20:00:00+00:00", at=LATER))
    assert interruption_of(r)["on"] == date(2024, 2, 20)


@pytest.mark.parametrize("outcome", ["reached", "refused", "disputed"])
def test_a_contact_that_reached_the_customer_and_asked_for_payment_is_a_demand(outcome):
    r = given_in("following_up", record_contact(outcome=outcome, channel="phone"))
    assert interruption_of(r) == {"kind": "demand", "on": date(2024, 2, 20), "version": r.version}


@pytest.mark.parametrize("outcome", ["no_answer", "left_message", "wrong_contact", "other"])
def test_a_contact_that_did_not_reach_the_customer_interrupts_nothing(outcome):
    r = given_in("following_up", record_contact(outcome=outcome))
    assert r.limitation_period == limitation.Period(DUE_PERIOD_START, None)


@pytest.mark.parametrize(
    ("call", "on"),
    [
        (record_contact(outcome="acknowledged"), date(2024, 2, 20)),
        (record_contact(outcome="promised"), date(2024, 2, 20)),
        (promise_to_pay(), date(2024, 2, 20)),
        (record_payment(paid_on=date(2024, 2, 16)), date(2024, 2, 16)),  # the day paid, not the day recorded
    ],
    ids=["acknowledged contact", "promised contact", "promise", "payment"],
)
def test_an_acknowledgement_restarts_the_period_on_its_day(call, on):
    r = given_in("following_up", call)
    assert interruption_of(r) == {"kind": "acknowledgement", "on": on, "version": r.version}
    assert r.limitation_period.started_on == on


def test_proceedings_filed_restart_the_period_on_the_day_filed():
    r = given_in("legal")
    events = when(r, record_proceedings(kind="arbitration", filed_on=date(2024, 2, 19), case_number="SHIAC-2024-7"))
    assert names(events) == ["ProceedingsRecorded"]
    assert (events[0].kind, events[0].filed_on, events[0].case_number) == ("arbitration", date(2024, 2, 19), "SHIAC-2024-7")
    assert r.state == "legal"
    assert interruption_of(r) == {"kind": "proceedings", "on": date(2024, 2, 19), "version": r.version}


def test_an_installment_plan_runs_the_period_from_the_day_after_its_last_installment():
    r = given_in("due", agree_installment_plan())  # installments on 2024-03-01 and 2024-04-01
    assert r.limitation_period.started_on == date(2024, 4, 2)
    assert interruption_of(r) == {"kind": "acknowledgement", "on": date(2024, 2, 20), "version": r.version}
    assert r.limitation_lapses_on(POLICY) == date(2027, 4, 2)
    # A demand during the plan does not shorten it.
    when(r, record_contact(outcome="reached", at="2024-03-05T02:00:00+00:00"))
    assert r.limitation_period.started_on == date(2024, 4, 2)


def test_nothing_moves_the_period_back():
    r = given_in("following_up", record_contact(outcome="reached", at="2024-03-05T02:00:00+00:00"))
    before = r.limitation_period
    when(r, record_payment(paid_on=date(2024, 2, 10), at="2024-03-06T02:00:00+00:00"))  # paid earlier, recorded later
    assert r.limitation_period == before


# ---- delivered, not queued -------------------------------------------------------------


def test_a_message_queued_but_not_delivered_does_not_interrupt_the_period():
    # Starting follow-up queues the first dunning message; until its delivery is recorded, nothing moves.
    r = given_in("following_up")
    assert names(story(*path_to("following_up"))[1])[-1] == "FollowUpStarted"
    assert r.limitation_period == limitation.Period(DUE_PERIOD_START, None)


def test_a_delivered_message_that_asks_for_nothing_does_not_interrupt_the_period():
    r = given_in("following_up", record_delivery(template="payment_receipt", message_id="m-9"))
    assert r.delivered_messages == ["m-9"]
    assert r.limitation_period == limitation.Period(DUE_PERIOD_START, None)


def test_a_pre_due_reminder_delivered_before_the_period_starts_moves_nothing():
    r = given_in("reminded", record_delivery(template="pre_due_reminder", at="2024-02-01T02:00:00+00:00"))
    assert r.limitation_period == limitation.Period(DUE_PERIOD_START, None)


def test_a_delivery_is_recorded_once_per_message():
    r = given_in("following_up", record_delivery(message_id="m-1"))
    then_refused(r, record_delivery(message_id="m-1", at="2024-02-21T02:00:00+00:00"), "delivery.duplicate", field="message_id")


def test_a_delivery_in_the_future_or_before_issue_is_refused():
    r = given_in("following_up")
    then_refused(r, record_delivery(delivered_at="2024-02-21T02:00:00+00:00"), "delivery.future", field="delivered_at")
    then_refused(r, record_delivery(delivered_at="2024-01-01T02:00:00+00:00"), "delivery.before_issue", field="delivered_at")
    # Year 1 an hour east of UTC: refused for its range before any zone conversion could overflow.
    then_refused(r, record_delivery(delivered_at="0001-01-01T00:00:00+01:00"), "field.date_range", field="delivered_at")


@pytest.mark.parametrize("state", ["settled", "written_off"])
def test_a_delivery_after_the_receivable_closed_is_not_allowed(state):
    then_not_allowed(given_in(state), record_delivery())


# ---- proceedings: only in legal, dated sensibly --------------------------------------------


@pytest.mark.parametrize("state", ["issued", "reminded", "due", "following_up", "promised", "overdue_escalated", "settled", "written_off"])
def test_proceedings_are_recorded_only_once_the_receivable_is_with_legal(state):
    then_not_allowed(given_in(state), record_proceedings())


def test_proceedings_filed_in_the_future_or_before_issue_or_twice_are_refused():
    r = given_in("legal", record_proceedings(case_number="C-1", filed_on=date(2024, 2, 19)))
    then_refused(r, record_proceedings(filed_on=date(2024, 2, 21)), "proceedings.future_date", field="filed_on")
    then_refused(r, record_proceedings(filed_on=date(2024, 1, 7)), "proceedings.before_issue", field="filed_on")
    then_refused(r, record_proceedings(case_number="C-1"), "proceedings.duplicate", field="case_number")
    then_refused(r, record_proceedings(kind="mediation"), "field.choice", field="kind")


# ---- the warning follows the period -------------------------------------------------


def test_a_demand_after_the_warning_moves_the_warning_to_the_new_lapse_date():
    r = given_in("overdue_escalated", warn_limitation(at="2026-11-10T02:00:00+00:00"))
    assert r.limitation_warned_for == date(2027, 2, 8)
    assert owed(r, POLICY, _instant("2026-11-10T02:00:00+00:00")) == []
    when(r, record_delivery(template="dunning", at="2026-11-20T02:00:00+00:00"))
    (timer,) = owed(r, POLICY, _instant("2026-11-20T02:00:00+00:00"))
    assert (timer.kind, timer.at) == ("limitation_warning", _instant("2029-08-21T16:00:00+00:00"))  # 90 days before 2029-11-20
    assert timer.reason == "limitation period lapses on 2029-11-20"


# ---- one computation: the compliance rule sees the same periods ---------------------------


MIXED = (
    issue(),
    fall_due(),
    start_follow_up(),
    record_contact(outcome="no_answer", at="2024-02-21T02:00:00+00:00"),
    record_delivery(template="first_dunning", at="2024-02-22T02:00:00+00:00"),
    record_contact(outcome="reached", at="2024-03-04T02:00:00+00:00"),
    promise_to_pay(promised_on=date(2024, 3, 20), at="2024-03-05T02:00:00+00:00"),
    record_payment("100.00", paid_on=date(2024, 3, 18), at="2024-03-19T02:00:00+00:00"),
    record_delivery(template="payment_receipt", at="2024-03-19T03:00:00+00:00"),
    break_promise(at="2024-04-10T02:00:00+00:00"),
    agree_installment_plan(
        [{"due_on": date(2024, 5, 1), "amount": "400.00"}, {"due_on": date(2024, 9, 1), "amount": "500.00"}],
        at="2024-04-11T02:00:00+00:00",
    ),
    record_delivery(template="broken_promise", at="2024-05-10T02:00:00+00:00"),
    record_contact(outcome="acknowledged", at="2024-10-08T02:00:00+00:00"),
)


def test_the_compliance_rule_sees_the_same_limitation_periods_as_the_receivable_at_every_version():
    _, events = story(*MIXED)
    facts = [fact_of(e) for e in events]
    stored = _decode(_encode(facts))  # as the compliance projection keeps them
    for n in range(1, len(events) + 1):
        r = replay(events[:n])
        assert limitation_periods(facts[:n])[-1] == r.limitation_period, n
        assert limitation_periods(stored[:n])[-1] == r.limitation_period, n
    kinds = [p.last_interruption and p.last_interruption["kind"] for p in limitation_periods(facts)]
    # due; dunning delivered; reached; promise; payment; plan (to 2 Sept); acknowledged in October
    assert kinds == [None, "demand", "demand", "acknowledgement", "acknowledgement", "acknowledgement", "acknowledgement"]
    assert r.limitation_period.started_on == date(2024, 10, 8)


def _limitation_findings(*calls):
    facts = [fact_of(e) for e in story(*calls)[1]]
    found = findings_as_of(facts, {POLICY.version: POLICY}, "r-1", _instant("2027-01-01T00:00:00+00:00"))
    return [f.rule_id for f in found if f.rule_id.startswith("limitation.")]


def test_a_demand_delivered_in_the_warning_lead_is_the_action_the_rule_asks_for():
    base = (issue(), fall_due(), start_follow_up(), record_contact(outcome="no_answer", next_step="letter"))
    assert _limitation_findings(*base) == ["limitation.no_action"]
    assert _limitation_findings(*base, record_delivery(template="dunning", at="2026-11-20T02:00:00+00:00")) == []


# ---- snapshots taken before the change ---------------------------------------------------


def test_a_receivable_restored_from_a_snapshot_older_than_the_interruptions_keeps_its_period():
    for start_of_old_period, expected in ((date(2024, 2, 7), DUE_PERIOD_START), (date(2024, 2, 20), date(2024, 2, 20))):
        r = copy.deepcopy(given_in("following_up"))
        del r.__dict__["limitation_state"]  # an old snapshot's state had `limitation_from` instead
        r.limitation_from = start_of_old_period
        assert r.limitation_period == limitation.Period(expected, None)
        when(r, record_contact(outcome="reached", at="2024-03-04T02:00:00+00:00"))
        assert r.limitation_period.started_on == date(2024, 3, 4)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)

