"""Charges (docs/charges.md, ADR 0053/0054): interest and late fees accrued as events,
payments allocated fees → interest → principal (PRC Civil Code art. 561), waivers.

Figures are written out by hand in each test, on purpose not computed with the code's functions.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from collections_es.domain import charges, schedule
from collections_es.domain.policy import ChargesPolicy

from .helpers import (
    CHARGING_POLICY,
    OTHER_SUPERVISOR,
    POLICY,
    SUPERVISOR,
    Call,
    accrue_charges,
    approve_charges_waiver,
    context,
    fall_due,
    given,
    issue,
    names,
    record_payment,
    replay,
    story,
    then_refused,
    waive_charges,
    when,
)

#: 3.65% a year, no late fee: 10,000.00 earns exactly 1.00 a day (10,000 × 0.0365 / 365).
INTEREST_ONLY = CHARGING_POLICY.model_copy(
    update={"version": "test-interest", "charges": ChargesPolicy(interest_rate_per_annum=Decimal("0.0365"))}
)
TEN_THOUSAND_DUE_MARCH = issue(amount="10000.00", due_on=date(2026, 3, 31), issued_on=date(2026, 3, 1), at="2026-03-01T02:00:00+00:00")


def pay(amount: str, on: date, *, policy=INTEREST_ONLY) -> Call:
    call = record_payment(amount, paid_on=on, at=f"{on.isoformat()}T03:00:00+00:00")
    return call.in_context(context(call.ctx.now, call.ctx.actor, policy=policy))


def charging(call: Call, policy=CHARGING_POLICY) -> Call:
    """The call under a charging policy."""
    return call.in_context(context(call.ctx.now, call.ctx.actor, policy=policy))


def breakdown(r) -> dict[str, str]:
    return {k: f"{v:f}" for k, v in r.balance_breakdown.items()}


def test_interest_over_a_month_with_two_partial_payments_matches_the_hand_computation():
    """CNY 10,000.00 due 31 March 2026 at 3.65% a year, so 0.01% of the principal a day.

    1-10 April (10 days) on 10,000.00:        10 × 1.0000    = 10.00 interest
      10 April: 3,000.00 paid → 10.00 interest, 2,990.00 principal; principal 7,010.00
    11-20 April (10 days) on 7,010.00:        10 × 0.7010    =  7.01 interest
      20 April: 2,000.00 paid → 7.01 interest, 1,992.99 principal; principal 5,017.01
    21-30 April (10 days) on 5,017.01:        10 × 0.501701  =  5.01701
      month end: interest through 30 April = round(10 + 7.01 + 5.01701) = 22.03,
      of which 17.01 accrued before: this accrual adds 5.02.
    Owed on 1 May: principal 5,017.01 + interest 5.02 = 5,022.03.
    """
    r, events = story(
        TEN_THOUSAND_DUE_MARCH,
        fall_due(at="2026-03-31T02:00:00+00:00"),
        pay("3000.00", date(2026, 4, 10)),
        pay("2000.00", date(2026, 4, 20)),
        accrue_charges(through=date(2026, 4, 30), at="2026-04-30T16:00:00+00:00", policy=INTEREST_ONLY),
    )
    accruals = [e for e in events if names([e]) == ["ChargesAccrued"]]
    assert [(e.since, e.through, e.days, e.principal, e.interest) for e in accruals] == [
        (date(2026, 4, 1), date(2026, 4, 10), 10, Decimal("10000.00"), Decimal("10.00")),
        (date(2026, 4, 11), date(2026, 4, 20), 10, Decimal("7010.00"), Decimal("7.01")),
        (date(2026, 4, 21), date(2026, 4, 30), 10, Decimal("5017.01"), Decimal("5.02")),
    ]
    payments = [e for e in events if names([e]) == ["PaymentRecorded"]]
    assert [e.allocation for e in payments] == [
        {"fees": Decimal("0.00"), "interest": Decimal("10.00"), "principal": Decimal("2990.00")},
        {"fees": Decimal("0.00"), "interest": Decimal("7.01"), "principal": Decimal("1992.99")},
    ]
    assert breakdown(r) == {"principal": "5017.01", "interest": "5.02", "fees": "0.00"}
    assert r.balance == Decimal("5022.03")
    assert breakdown(replay(events)) == breakdown(r)


def test_how_the_days_are_cut_into_periods_does_not_change_the_interest():
    whole = given(TEN_THOUSAND_DUE_MARCH, accrue_charges(through=date(2026, 4, 30), at="2026-05-01T02:00:00+00:00", policy=INTEREST_ONLY))
    daily = given(
        TEN_THOUSAND_DUE_MARCH,
        *[
            accrue_charges(through=date(2026, 4, d), at="2026-05-01T02:00:00+00:00", policy=INTEREST_ONLY)
            for d in range(1, 31)
        ],
    )
    assert breakdown(whole) == breakdown(daily) == {"principal": "10000.00", "interest": "30.00", "fees": "0.00"}


def test_a_third_of_a_cent_a_day_rounds_once_on_the_total_not_each_day():
    # 100.00 at 1.2045% a year: 0.0033 a day; ten days: 0.033 → 0.03, where rounding each
    # day's accrual (0.0033 → 0.00) would have given nothing.
    policy = CHARGING_POLICY.model_copy(update={"charges": ChargesPolicy(interest_rate_per_annum=Decimal("0.012045"))})
    r = given(
        issue(amount="100.00", due_on=date(2026, 3, 31), issued_on=date(2026, 3, 1), at="2026-03-01T02:00:00+00:00"),
        *[accrue_charges(through=date(2026, 4, d), at="2026-05-01T02:00:00+00:00", policy=policy) for d in range(1, 11)],
    )
    assert r.balance_breakdown["interest"] == Decimal("0.03")


def test_each_day_is_accrued_once_so_a_repeated_accrual_is_refused_and_changes_nothing():
    r = given(TEN_THOUSAND_DUE_MARCH, accrue_charges(through=date(2026, 4, 30), at="2026-05-01T02:00:00+00:00", policy=INTEREST_ONLY))
    then_refused(r, accrue_charges(through=date(2026, 4, 30), at="2026-05-01T02:00:00+00:00", policy=INTEREST_ONLY), "charges.accrued")
    then_refused(r, accrue_charges(through=date(2026, 4, 15), at="2026-05-01T02:00:00+00:00", policy=INTEREST_ONLY), "charges.accrued")


def test_nothing_accrues_before_the_day_after_due_nor_for_a_future_day_nor_without_charges():
    r = given(TEN_THOUSAND_DUE_MARCH)
    then_refused(r, accrue_charges(through=date(2026, 3, 31), at="2026-04-01T02:00:00+00:00", policy=INTEREST_ONLY), "charges.accrued")
    then_refused(r, accrue_charges(through=date(2026, 4, 2), at="2026-04-01T02:00:00+00:00", policy=INTEREST_ONLY), "charges.future")
    then_refused(r, accrue_charges(at="2026-04-10T02:00:00+00:00", policy=POLICY), "charges.none")


def test_the_late_fee_is_charged_once_on_its_day():
    # Standard story: CNY 1,000.00 due 7 Feb 2024; CNY 50.00 late fee 10 days past due (17 Feb).
    r = given(issue(), accrue_charges(through=date(2024, 2, 16), at="2024-02-20T02:00:00+00:00"))
    assert r.balance_breakdown["fees"] == Decimal("0.00")
    events = when(r, accrue_charges(through=date(2024, 2, 17), at="2024-02-20T02:00:00+00:00"))
    assert events[0].fee == Decimal("50.00")
    when(r, accrue_charges(through=date(2024, 2, 29), at="2024-03-01T02:00:00+00:00"))
    # Interest 8 Feb - 29 Feb: 22 days × 1,000.00 × 0.0001 = 2.20; the fee once.
    assert breakdown(r) == {"principal": "1000.00", "interest": "2.20", "fees": "50.00"}


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["fees", "interest", "principal"], {"fees": "50.00", "interest": "1.30", "principal": "48.70"}),
        (["interest", "fees", "principal"], {"fees": "50.00", "interest": "1.30", "principal": "48.70"}),
        (["principal", "interest", "fees"], {"fees": "0.00", "interest": "0.00", "principal": "100.00"}),
        (["interest", "principal", "fees"], {"fees": "0.00", "interest": "1.30", "principal": "98.70"}),
    ],
)
def test_a_payment_settles_the_parts_in_the_policys_order(order, expected):
    """Through 20 Feb 2024: interest 13 days × 0.10 = 1.30 and the 50.00 fee (17 Feb); 100.00 paid."""
    policy = CHARGING_POLICY.model_copy(
        update={"charges": CHARGING_POLICY.charges.model_copy(update={"allocation_order": order})}
    )
    r = given(issue(), fall_due())
    events = when(r, charging(record_payment("100.00"), policy))
    assert names(events) == ["ChargesAccrued", "PaymentRecorded"]
    assert {k: f"{v:f}" for k, v in events[1].allocation.items()} == expected


def test_art_561_is_the_default_order():
    assert ChargesPolicy().allocation_order == ["fees", "interest", "principal"]
    assert charges.allocate(Decimal("60.00"), {"fees": Decimal("50.00"), "interest": Decimal("20.00"), "principal": Decimal("900.00")}, ["fees", "interest", "principal"]) == {
        "fees": Decimal("50.00"), "interest": Decimal("10.00"), "principal": Decimal("0.00")
    }


def test_a_payment_of_everything_owed_settles_and_one_cent_more_is_refused():
    # Through 20 Feb: 1,000.00 + 1.30 interest + 50.00 fee = 1,051.30.
    r = given(issue(), fall_due())
    then_refused(r, charging(record_payment("1051.31")), "payment.overpayment", field="amount")
    when(r, charging(record_payment("1051.30")))
    assert r.state == "settled" and r.balance == 0


def test_without_charges_a_payment_records_no_allocation_and_no_accrual():
    r = given(issue(), fall_due())
    events = when(r, record_payment("100.00"))
    assert names(events) == ["PaymentRecorded"] and events[0].allocation is None


def test_a_waiver_at_or_below_the_threshold_is_done_at_once_fees_first():
    r = given(issue(), accrue_charges())  # 1.30 interest, 50.00 fee
    events = when(r, waive_charges("20.00"))
    assert names(events) == ["ChargesWaived"]
    assert (events[0].fees, events[0].interest) == (Decimal("20.00"), Decimal("0.00"))
    assert breakdown(r) == {"principal": "1000.00", "interest": "1.30", "fees": "30.00"}


def test_a_waiver_above_the_threshold_needs_a_second_supervisor():
    r = given(issue(), accrue_charges())
    events = when(r, waive_charges("51.30", reason="customer hardship"))
    assert names(events) == ["ChargesWaiverRequested"]
    assert r.charges_balance == Decimal("51.30"), "nothing is waived before the approval"
    then_refused(r, approve_charges_waiver(by=SUPERVISOR), "charges_waiver.four_eyes")
    events = when(r, approve_charges_waiver(by=OTHER_SUPERVISOR))
    assert names(events) == ["ChargesWaived"]
    assert events[0].requested_by == SUPERVISOR.id and events[0].actor_id == OTHER_SUPERVISOR.id
    assert breakdown(r) == {"principal": "1000.00", "interest": "0.00", "fees": "0.00"}
    assert r.charges["waiver"] is None


def test_a_waiver_cannot_exceed_the_charges_nor_be_approved_unrequested():
    r = given(issue(), accrue_charges())
    then_refused(r, waive_charges("51.31"), "charges_waiver.exceeds", field="amount")
    then_refused(r, approve_charges_waiver(), "charges_waiver.not_requested")


def test_waiving_the_last_charges_after_the_principal_is_paid_settles():
    policy = CHARGING_POLICY.model_copy(
        update={"charges": ChargesPolicy(**{**CHARGING_POLICY.charges.model_dump(), "allocation_order": ["principal", "interest", "fees"], "waiver_second_approval_above": None})}
    )
    r = given(issue(), fall_due())
    when(r, charging(record_payment("1000.00"), policy))
    assert r.state == "due" and r.balance == Decimal("51.30")
    when(r, waive_charges("20.00", policy=policy))
    when(r, waive_charges("31.30", policy=policy))  # this policy has no threshold
    assert r.state == "settled" and r.balance == 0


def test_the_month_end_timer_runs_through_each_months_last_day_or_the_late_fees_day():
    r = given(issue(), fall_due())  # due 7 Feb 2024, fee day 17 Feb (Shanghai)
    timers = {t.kind: t for t in schedule.owed(r, CHARGING_POLICY, context().now)}
    assert timers["charges"].at.isoformat() == "2024-02-17T16:00:00+00:00"  # start of 18 Feb in Shanghai
    r = given(issue(), fall_due(), accrue_charges(through=date(2024, 2, 17)))
    timers = {t.kind: t for t in schedule.owed(r, CHARGING_POLICY, context().now)}
    assert timers["charges"].at.isoformat() == "2024-02-29T16:00:00+00:00"  # start of 1 March: through 29 Feb
    assert "charges" not in {t.kind for t in schedule.owed(r, POLICY, context().now)}


def test_a_payment_dated_before_the_last_accrual_lowers_the_principal_from_that_accrual_on():
    """Accrued through 29 Feb 2024 (22 days × 0.10 = 2.20 and the 50.00 fee); a payment of 552.20
    dated 20 Feb is recorded on 1 March: nothing is accrued again, it settles 50.00 + 2.20 + 500.00,
    and March's interest runs on 500.00: 31 × 0.05 = 1.55 (ADR 0053)."""
    r = given(issue(), accrue_charges(through=date(2024, 2, 29), at="2024-03-01T02:00:00+00:00"))
    payment = charging(record_payment("552.20", paid_on=date(2024, 2, 20), at="2024-03-01T02:00:00+00:00"))
    events = when(r, payment)
    assert names(events) == ["PaymentRecorded"]
    assert events[0].allocation == {"fees": Decimal("50.00"), "interest": Decimal("2.20"), "principal": Decimal("500.00")}
    events = when(r, accrue_charges(through=date(2024, 3, 31), at="2024-04-01T02:00:00+00:00"))
    assert (events[0].principal, events[0].interest) == (Decimal("500.00"), Decimal("1.55"))
    assert breakdown(r) == {"principal": "500.00", "interest": "1.55", "fees": "0.00"}
