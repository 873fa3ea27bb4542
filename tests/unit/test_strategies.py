"""Strategies (issue 13, ADR 0050): which cadence a receivable follows, the policy it makes,
and what the cadence figures peers offer do to the timers. Pure.

The receivable is the one of test_schedule: CNY 1,200.50 to a customer in Shanghai
(09:00 local is 01:00Z), issued Monday 2 March 2026, due Friday 3 April (its midnight
is 2 April 16:00Z); the windows are weekdays 09:00-12:00 and 14:00-18:00.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from collections_es.domain import simulation, strategy
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.schedule import owed
from collections_es.domain.strategy import CustomerFacts
from collections_es.domain.trail import Context, stored_event_hash

from .test_schedule import COLLECTOR, SCHEDULER, WEEKDAY_WINDOWS, issued, kinds, utc


def policy(*strategies: dict[str, Any], **figures: Any) -> CollectionPolicy:
    return CollectionPolicy.model_validate(
        {"version": "unit-s", "contact": {"windows": WEEKDAY_WINDOWS}, **figures, "strategies": list(strategies)}
    )


def auto(at: str, p: CollectionPolicy, strategy_id: str | None = None) -> Context:
    """The scheduler's context: a timer due at `at`, fired at `at`."""
    return Context(SCHEDULER, utc(at), "unit", p, scheduled_for=utc(at), strategy=strategy_id)


def by_hand(at: str, p: CollectionPolicy) -> Context:
    return Context(COLLECTOR, utc(at), "unit", p)


def timer_kinds(r: Receivable, p: CollectionPolicy, since: str) -> list[str]:
    return [t.kind for t in owed(r, p, utc(since))]


SMB = {"id": "smb", "match": {"segments": ["smb"]}, "escalate_after_days": 10}
BIG_CNY = {"id": "big-cny", "match": {"currency": "CNY", "min_amount": "100000"}, "escalate_after_days": 60}
TIER_A = {"id": "tier-a", "match": {"tiers": ["A"]}, "reminder_lead_days": 14}
CATCH_ALL = {"id": "default", "follow_up_after_days": 2}


# ---- which strategy applies ------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "amount", "currency", "expected"),
    [
        (CustomerFacts(tier="A", segment="smb"), "1000", "CNY", "smb"),  # the first that matches
        (CustomerFacts(tier="A"), "1000", "CNY", "tier-a"),
        (CustomerFacts(tier="A"), "100000", "CNY", "big-cny"),  # the band's lower bound is in it
        (CustomerFacts(tier="A"), "99999.99", "CNY", "tier-a"),
        (CustomerFacts(tier="A"), "100000", "USD", "tier-a"),  # another currency
        (CustomerFacts(tier="B"), "1000", "CNY", "default"),  # a strategy without conditions matches all
        (CustomerFacts(tier="B", strategy="smb"), "100000", "CNY", "smb"),  # the customer's own wins
        (CustomerFacts(tier="B", strategy="gone"), "1000", "CNY", "default"),  # an id the policy lacks: matching
    ],
)
def test_the_customers_own_strategy_else_the_first_that_matches_applies(facts, amount, currency, expected):
    p = policy(SMB, BIG_CNY, TIER_A, CATCH_ALL)
    assert strategy.resolve(p, facts, Decimal(amount), currency).strategy == expected


def test_without_a_matching_strategy_the_policy_itself_applies():
    p = policy(SMB)
    resolved = strategy.resolve(p, CustomerFacts(segment="enterprise"), Decimal(1), "CNY")
    assert resolved == strategy.Resolved(None, p)
    assert resolved.policy is p


def test_an_amount_band_lies_below_its_upper_bound_and_needs_a_currency():
    p = policy({"id": "small", "match": {"currency": "CNY", "max_amount": "500"}, "escalate_after_days": 90})
    assert strategy.resolve(p, CustomerFacts(), Decimal("499.99"), "CNY").strategy == "small"
    assert strategy.resolve(p, CustomerFacts(), Decimal("500"), "CNY").strategy is None
    with pytest.raises(ValidationError, match="an amount band needs a currency"):
        policy({"id": "x", "match": {"min_amount": "10"}})


# ---- the policy a strategy makes ----------------------------------------------


def test_a_strategy_overrides_figures_and_merges_tables_key_by_key():
    p = policy(
        {
            "id": "gentle",
            "escalate_after_days": 45,
            "contact": {"max_attempts_per_receivable": 1},
            "channels_by_state": {"due": ["letter"]},
            "automatic_dunning_min_amount": {"CNY": "200.00"},
        },
        channels_by_state={"issued": ["email"], "due": ["email", "sms"]},
    )
    made = strategy.effective(p, "gentle")
    assert (made.version, made.escalate_after_days, made.follow_up_after_days) == ("unit-s", 45, 1)
    assert made.contact.max_attempts_per_receivable == 1
    assert made.contact.windows == p.contact.windows  # the rest of the table stands
    assert made.channels_by_state == {"issued": ["email"], "due": ["letter"]}
    assert made.automatic_dunning_min_amount == {"CNY": Decimal("200.00")}
    assert made.strategies == []
    assert strategy.effective(p, "gentle") is made  # built once


def test_every_top_level_policy_field_but_version_and_strategies_is_overridable():
    """Generic: a field added to the policy later is overridable without naming it anywhere."""
    base = policy()
    document = base.model_dump(mode="json")
    fields = strategy.overridable_fields()
    assert fields == set(CollectionPolicy.model_fields) - {"version", "strategies"}
    overrides = {name: document[name] for name in fields}
    made = strategy.effective(policy({"id": "all", **overrides}), "all")
    assert made.model_dump(exclude={"strategies"}) == base.model_dump(exclude={"strategies"})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"escalate_after_days": 0}, "strategy 'bad': field 'escalate_after_days'"),
        ({"follow_up_after_days": 40}, "escalate_after_days must be greater than follow_up_after_days"),
        ({"no_such_figure": 1}, "'no_such_figure' is not a policy field a strategy may set"),
        ({"version": "2"}, "'version' is not a policy field a strategy may set"),
        ({"strategies": []}, "'strategies' is not a policy field a strategy may set"),
        ({"contact": {"windows": {"mon": [{"start": "12:00", "end": "09:00"}]}}}, "strategy 'bad': field 'contact.windows.mon.0'"),
    ],
)
def test_a_policy_whose_strategy_makes_an_invalid_policy_is_refused_naming_the_strategy_and_field(override, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        policy({"id": "bad", **override})


def test_strategy_ids_are_unique():
    with pytest.raises(ValidationError, match="strategy id 'a' is used twice"):
        policy({"id": "a"}, {"id": "a"})


def test_the_customers_hours_narrow_the_windows_and_hours_outside_them_leave_the_windows_as_they_are():
    p = policy()
    narrowed = strategy.effective(p, None, (("10:30", "15:00"),))
    assert [(w.start.isoformat(), w.end.isoformat()) for w in narrowed.contact.windows["mon"]] == [
        ("10:30:00", "12:00:00"),
        ("14:00:00", "15:00:00"),
    ]
    assert strategy.effective(p, None, (("20:00", "22:00"),)) is p
    assert strategy.overlaps_windows(p, (("08:00", "09:30"),))
    assert not strategy.overlaps_windows(p, (("12:00", "14:00"),))


# ---- the trail: what an event followed, recomputed ------------------------------


def test_every_event_records_its_strategy_and_the_policy_it_made_can_be_recomputed_from_it():
    p = policy(SMB)
    resolved = strategy.resolve(p, CustomerFacts(segment="smb", contact_hours=(("09:00", "11:00"),)), Decimal("1200.50"), "CNY")
    r = issued()
    r.fall_due(replace(auto("2026-04-02T16:00:00Z", resolved.policy), strategy=resolved.strategy))
    [event] = r.collect_events()
    assert (event.policy_version, event.strategy) == ("unit-s", "smb")
    assert stored_event_hash(event) == event.hash  # the strategy is in the hashed content
    assert strategy.effective(p, event.strategy, (("09:00", "11:00"),)) == resolved.policy
    assert (r.policy_version, r.strategy) == ("unit-s", "smb")


def test_an_event_without_a_strategy_hashes_as_events_did_before_strategies():
    r = issued()
    r.fall_due(auto("2026-04-02T16:00:00Z", policy()))
    [event] = r.collect_events()
    assert event.strategy is None
    assert stored_event_hash(event) == event.hash
    assert "strategy" not in strategy_free_payload(event)


def strategy_free_payload(event: Any) -> str:
    from collections_es.domain.trail import stored_event_payload

    return stored_event_payload(event)


def test_a_re_plan_follows_the_context_and_is_refused_when_nothing_would_change():
    p = policy(SMB)
    r = issued()
    smb = strategy.effective(p, "smb")
    r.replan(replace(by_hand("2026-03-10T02:00:00Z", smb), strategy="smb"), reason="segment smb", contact_hours=None)
    assert (r.strategy, r.contact_hours) == ("smb", None)
    with pytest.raises(RuleViolationError) as refused:
        r.replan(replace(by_hand("2026-03-11T02:00:00Z", smb), strategy="smb"), reason="again")
    assert refused.value.rule_id == "replan.unchanged"
    hours = [{"start": "09:00", "end": "10:00"}]
    r.replan(replace(by_hand("2026-03-11T02:00:00Z", smb), strategy="smb"), reason="hours", contact_hours=hours)
    assert r.contact_hours == hours


# ---- reminders: how many, how far apart --------------------------------------------


def test_automatic_reminders_come_at_the_strategys_interval_up_to_its_maximum_before_the_due_day():
    p = policy(max_automatic_reminders=3, reminder_interval_days=2)
    r = issued()
    expected = ["2026-03-27T01:00:00Z", "2026-03-30T01:00:00Z", "2026-04-01T01:00:00Z"]  # Fri; Sun→Mon; Wed
    for at in expected:
        assert kinds(owed(r, p, utc(at)))[0] == ("reminder", utc(at))
        r.send_reminder(auto(at, p), channel="email")
    assert "reminder" not in timer_kinds(r, p, "2026-04-01T02:00:00Z")
    with pytest.raises(RuleViolationError) as refused:
        r.send_reminder(auto("2026-04-02T01:00:00Z", p), channel="email")
    assert refused.value.rule_id == "reminder.max_reached"
    r.send_reminder(by_hand("2026-04-02T01:00:00Z", p), channel="phone")  # a person may still remind
    assert r.reminders_sent == 4


def test_an_automatic_reminder_before_the_interval_is_refused():
    p = policy(max_automatic_reminders=3, reminder_interval_days=2)
    r = issued()
    r.send_reminder(auto("2026-03-27T01:00:00Z", p), channel="email")
    with pytest.raises(RuleViolationError) as refused:
        r.send_reminder(auto("2026-03-28T01:00:00Z", p), channel="email")
    assert refused.value.rule_id == "reminder.too_soon"


def test_one_reminder_by_default_as_before_strategies():
    r = issued()
    r.send_reminder(by_hand("2026-03-27T01:00:00Z", policy()), channel="email")
    assert "reminder" not in timer_kinds(r, policy(), "2026-03-27T02:00:00Z")


# ---- no automatic dunning below a minimum, re-anchored by payments -------------------


def test_below_the_minimum_balance_nothing_is_dunned_automatically_and_a_partial_payment_re_anchors_it():
    p = policy(automatic_dunning_min_amount={"CNY": "500.00", "USD": "100.00"})
    small = issued(amount="300.00")
    assert timer_kinds(small, p, "2026-03-02T01:00:00Z") == ["fall_due", "limitation_warning"]

    r = issued()
    r.fall_due(auto("2026-04-02T16:00:00Z", p))
    assert timer_kinds(r, p, "2026-04-02T16:00:00Z") == ["follow_up", "escalate", "limitation_warning"]
    r.record_payment(by_hand("2026-04-03T02:00:00Z", p), amount="800.00", method="bank_transfer", paid_on=date(2026, 4, 3), reference="P-1")
    assert r.balance == Decimal("400.50")
    assert timer_kinds(r, p, "2026-04-03T02:00:00Z") == ["limitation_warning"]
    with pytest.raises(RuleViolationError) as refused:
        r.start_follow_up(auto("2026-04-06T01:00:00Z", p))
    assert refused.value.rule_id == "dunning.below_minimum"
    r.start_follow_up(by_hand("2026-04-06T01:00:00Z", p), channel="phone")  # a person may
    assert r.state == "following_up"


# ---- installment reminders -------------------------------------------------------------


PLAN = [{"due_on": date(2026, 4, 20), "amount": "600.25"}, {"due_on": date(2026, 5, 20), "amount": "600.25"}]


def on_a_plan(p: CollectionPolicy) -> Receivable:
    r = issued()
    r.fall_due(auto("2026-04-02T16:00:00Z", p))
    r.agree_installment_plan(by_hand("2026-04-07T02:00:00Z", p), installments=PLAN, reason="cash flow")
    return r


def pay(r: Receivable, p: CollectionPolicy, amount: str, at: str, reference: str) -> None:
    r.record_payment(by_hand(at, p), amount=amount, method="bank_transfer", paid_on=utc(at).date(), reference=reference)


def test_the_customer_is_reminded_before_each_installment_once_and_a_payment_moves_to_the_next():
    p = policy(installment_reminder_lead_days=3)
    r = on_a_plan(p)
    assert ("installment_reminder", utc("2026-04-17T01:00:00Z")) in kinds(owed(r, p, utc("2026-04-07T02:00:00Z")))
    with pytest.raises(RuleViolationError) as early:
        r.remind_installment(auto("2026-04-16T01:00:00Z", p), channel="email")
    assert early.value.rule_id == "installment_reminder.too_early"
    r.remind_installment(auto("2026-04-17T01:00:00Z", p), channel="email")
    [event] = r.collect_events()[-1:]
    assert (type(event).__name__, event.installment_due_on, event.amount) == (
        "InstallmentReminderSent", date(2026, 4, 20), Decimal("600.25")
    )
    assert "installment_reminder" not in timer_kinds(r, p, "2026-04-17T02:00:00Z")
    pay(r, p, "300.00", "2026-04-18T02:00:00Z", "P-1")  # part of the first: it was reminded already
    assert "installment_reminder" not in timer_kinds(r, p, "2026-04-18T02:00:00Z")
    pay(r, p, "300.25", "2026-04-20T02:00:00Z", "P-2")  # the first is paid: the second's turn
    # Three days before Wednesday 20 May is a Sunday: the Friday before.
    assert ("installment_reminder", utc("2026-05-15T01:00:00Z")) in kinds(owed(r, p, utc("2026-04-20T02:00:00Z")))
    with pytest.raises(RuleViolationError) as again:
        r.remind_installment(auto("2026-04-20T03:00:00Z", p), channel="email")
    assert again.value.rule_id == "installment_reminder.too_early"


def test_without_a_lead_in_the_policy_no_installment_reminder_is_owed_or_sent_automatically():
    p = policy()
    r = on_a_plan(p)
    assert "installment_reminder" not in timer_kinds(r, p, "2026-04-07T02:00:00Z")
    with pytest.raises(RuleViolationError) as off:
        r.remind_installment(auto("2026-04-17T01:00:00Z", p), channel="email")
    assert off.value.rule_id == "installment_reminder.off"
    r.remind_installment(by_hand("2026-04-17T01:00:00Z", p), channel="phone")  # a collector may


# ---- the simulation --------------------------------------------------------------------


def test_a_plan_lists_what_time_alone_would_do_and_leaves_the_receivable_as_it_was():
    p, strict = policy(), policy(escalate_after_days=10)
    r = issued()
    version = r.version
    since, until = utc("2026-03-10T00:00:00Z"), utc("2026-06-30T00:00:00Z")

    def steps(q: CollectionPolicy) -> list[tuple[str, datetime, str]]:
        return [(s.kind, s.at, s.state_after) for s in simulation.plan(r, q, None, since=since, until=until, preferred_channel="email")]

    assert steps(p) == [
        ("reminder", utc("2026-03-27T01:00:00Z"), "reminded"),
        ("fall_due", utc("2026-04-02T16:00:00Z"), "due"),
        ("follow_up", utc("2026-04-06T01:00:00Z"), "following_up"),  # Saturday 4 April: the Monday after
        ("escalate", utc("2026-05-02T16:00:00Z"), "overdue_escalated"),
    ]
    assert steps(strict)[-1] == ("escalate", utc("2026-04-12T16:00:00Z"), "overdue_escalated")
    assert (r.version, r.state, r.pending_events) == (version, "issued", [])
