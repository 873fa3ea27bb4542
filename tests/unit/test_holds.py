"""Holds in the domain (ADR 0052): which time-driven commands a hold suspends, how the
receivable refuses them while held, and the timers a hold leaves, as pure functions.

The receivable is in Shanghai, issued Monday 2 March 2026, due Friday 3 April: the policy
owes the reminder on Friday 27 March 09:00, falling due on 3 April 00:00, the follow-up
on Monday 6 April 09:00 (the day after due is a Saturday), the escalation on 3 May 00:00.
"""

from __future__ import annotations

import copy
from datetime import date

import pytest

from collections_es.domain import holds
from collections_es.domain.customer import Customer
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.receivable import Receivable
from collections_es.domain.schedule import owed
from collections_es.domain.trail import Actor, Context

from .helpers import replay
from .test_schedule import POLICY, SCHEDULER, ctx, fell_due, issued, kinds, utc

SUPERVISOR = Actor("supervisor:sue", "supervisor")
COLLECTOR = Actor("collector:ann", "collector")

REMINDER = utc("2026-03-27T01:00:00Z")
FALLS_DUE = utc("2026-04-02T16:00:00Z")
FOLLOW_UP = utc("2026-04-06T01:00:00Z")
ESCALATE = utc("2026-05-02T16:00:00Z")


def fired_by_time(at: str, scheduled_for: str | None = None) -> Context:
    """The scheduler's context: a command fired by a timer due at `scheduled_for`."""
    return Context(SCHEDULER, utc(at), "run-1", POLICY, scheduled_for=utc(scheduled_for or at))


def held(r: Receivable, at: str, **fields: object) -> Receivable:
    r.hold(ctx(at, SUPERVISOR), reason=str(fields.pop("reason", "talks")), **fields)  # type: ignore[arg-type]
    return r


def released(r: Receivable, at: str, scope: str | None = None) -> Receivable:
    r.release_hold(ctx(at, SUPERVISOR), reason="talks ended", scope=scope)
    return r


def test_a_hold_suspends_the_steps_that_act_on_the_customer_and_not_the_calendars_facts():
    assert holds.SUSPENDED == {"send_reminder", "start_follow_up", "escalate", "break_promise", "remind_installment"}
    for command in ("fall_due", "warn_limitation", "keep_promise", "record_payment"):
        assert not holds.suspends(command)


def test_time_does_not_fire_a_suspended_command_while_held_but_a_person_may_act():
    r = fell_due(held(issued(), "2026-03-20T02:00:00Z"), "2026-04-02T16:00:00Z")  # falling due still happens
    assert r.state == "due"
    with pytest.raises(RuleViolationError) as refused:
        r.start_follow_up(fired_by_time("2026-04-06T01:00:00Z"))
    assert refused.value.rule_id == "hold.in_force" and "receivable hold (talks)" in refused.value.detail
    with pytest.raises(RuleViolationError):
        r.escalate(fired_by_time("2026-05-02T16:00:00Z"), reason="30 days past due")
    r.start_follow_up(ctx("2026-04-07T02:00:00Z", COLLECTOR), channel="phone")
    assert r.state == "following_up"


def test_until_ends_a_hold_by_itself_and_a_release_ends_it_at_once():
    r = held(issued(), "2026-03-20T02:00:00Z", until=utc("2026-04-10T00:00:00+08:00"))
    assert r.holds_in_force(utc("2026-04-09T15:59:59Z"))[0].until == utc("2026-04-09T16:00:00Z")  # kept in UTC
    assert not r.is_held(utc("2026-04-09T16:00:00Z"))
    r = fell_due(r, "2026-04-02T16:00:00Z")
    r.start_follow_up(fired_by_time("2026-04-09T16:00:00Z"))
    assert r.state == "following_up"
    r = released(held(issued(), "2026-03-20T02:00:00Z"), "2026-03-21T02:00:00Z")
    assert r.holds_in_force(utc("2026-03-21T02:00:00Z")) == [] and r.resumed_at == utc("2026-03-21T02:00:00Z")


def test_the_receivables_own_hold_and_its_customers_stand_side_by_side_and_are_released_by_scope():
    r = held(issued(), "2026-03-20T02:00:00Z", reason="own")
    r = held(r, "2026-03-20T03:00:00Z", reason="customer's", scope="customer")
    r = held(r, "2026-03-20T04:00:00Z", reason="own, again")  # replaces the receivable's own
    assert [(h.scope, h.reason) for h in r.holds_in_force(utc("2026-03-21T00:00:00Z"))] == [
        ("receivable", "own, again"), ("customer", "customer's")
    ]
    r = released(r, "2026-03-22T00:00:00Z", scope="customer")
    assert [h.scope for h in r.holds_in_force(utc("2026-03-22T00:00:00Z"))] == ["receivable"]
    events = r.collect_events()
    assert [type(e).__name__ for e in events][-1] == "HoldReleased" and events[-1].scopes == ["customer"]
    again = replay([*issued_events(), *events])
    assert again.holds == r.holds and again.resumed_at == r.resumed_at


def issued_events() -> list[object]:
    r = Receivable.issue(
        ctx("2026-03-02T01:00:00Z", SCHEDULER), invoice_number=f"INV-{date(2026, 4, 3)}-Asia/Shanghai", customer_id="C-1",
        timezone="Asia/Shanghai", amount="1200.50", currency="CNY", issued_on=date(2026, 3, 2), due_on=date(2026, 4, 3),
    )
    return list(r.collect_events())


def test_hold_refusals():
    r = issued()
    for fields, rule in (
        ({"reason": " "}, "field.required"),
        ({"reason": "x", "until": utc("2026-03-20T02:00:00Z")}, "hold.until_past"),
        ({"reason": "x", "until": utc("2200-01-01T00:00:00Z")}, "field.date_range"),
        ({"reason": "x", "scope": "everyone"}, "field.choice"),
    ):
        before = copy.deepcopy(r)
        with pytest.raises(RuleViolationError) as refused:
            r.hold(ctx("2026-03-20T02:00:00Z", SUPERVISOR), **fields)  # type: ignore[arg-type]
        assert refused.value.rule_id == rule
        assert r == before
    with pytest.raises(RuleViolationError) as refused:
        r.release_hold(ctx("2026-03-20T02:00:00Z", SUPERVISOR), reason="x")
    assert refused.value.rule_id == "hold.not_in_force"


# ---- the timers a hold leaves -------------------------------------------------------------


def test_while_held_without_an_end_only_the_calendars_facts_have_timers():
    r = held(issued(), "2026-03-20T02:00:00Z")
    assert [k for k, _ in kinds(owed(r, POLICY, utc("2026-03-20T02:00:00Z")))] == ["fall_due", "limitation_warning"]
    r = fell_due(r, "2026-04-02T16:00:00Z")
    assert [k for k, _ in kinds(owed(r, POLICY, FALLS_DUE))] == ["limitation_warning"]


def test_after_a_release_what_came_due_is_owed_at_the_release_in_its_order_and_the_rest_keeps_its_date():
    r = fell_due(held(issued(), "2026-03-20T02:00:00Z"), "2026-04-02T16:00:00Z")
    release = "2026-04-20T02:00:00Z"  # Monday 20 April 10:00 in Shanghai, inside a window
    r = released(r, release)
    assert kinds(owed(r, POLICY, utc(release)))[:2] == [("follow_up", utc(release)), ("escalate", ESCALATE)]
    late = "2026-05-11T02:00:00Z"  # after the escalation's day: both caught up, follow-up first
    r = released(held(r, "2026-04-20T03:00:00Z"), late)
    timers = owed(r, POLICY, utc(late))
    assert kinds(timers)[:2] == [("follow_up", utc(late)), ("escalate", utc("2026-05-11T02:00:01Z"))]
    assert timers[0].reason.endswith("(caught up after a hold)")


def test_a_release_at_night_owes_the_follow_up_at_the_next_contact_window():
    r = fell_due(held(issued(), "2026-03-20T02:00:00Z"), "2026-04-02T16:00:00Z")
    r = released(r, "2026-04-20T14:00:00Z")  # 22:00 in Shanghai
    assert kinds(owed(r, POLICY, utc("2026-04-20T14:00:00Z")))[0] == ("follow_up", utc("2026-04-21T01:00:00Z"))


def test_a_hold_with_until_defers_what_comes_due_to_its_end_and_then_stays_put():
    until = utc("2026-04-08T04:00:00Z")  # Wednesday 12:00 in Shanghai: the windows reopen at 14:00
    r = held(issued(), "2026-03-20T02:00:00Z", until=until)
    timers = kinds(owed(r, POLICY, utc("2026-03-20T02:00:00Z")))
    assert [k for k, _ in timers] == ["fall_due", "limitation_warning"], "a reminder moved past the due date is dropped"
    r = fell_due(r, "2026-04-02T16:00:00Z")
    assert kinds(owed(r, POLICY, FALLS_DUE))[:2] == [("follow_up", utc("2026-04-08T06:00:00Z")), ("escalate", ESCALATE)]
    r.assign_collector(ctx("2026-04-09T00:00:00Z", SUPERVISOR), collector="bob")  # any later event: same instants
    assert kinds(owed(r, POLICY, utc("2026-04-09T00:00:00Z")))[:2] == [("follow_up", utc("2026-04-08T06:00:00Z")), ("escalate", ESCALATE)]


def test_a_pre_due_reminder_held_and_released_before_due_is_owed_from_the_release():
    r = held(issued(), "2026-03-20T02:00:00Z")
    r = released(r, "2026-03-30T02:00:00Z")  # Monday 30 March 10:00, before the due date
    assert kinds(owed(r, POLICY, utc("2026-03-30T02:00:00Z")))[0] == ("reminder", utc("2026-03-30T02:00:00Z"))


# ---- the customer --------------------------------------------------------------------------


def test_a_customers_hold_is_in_force_until_released_or_its_end():
    c = Customer.register(
        ctx("2026-03-01T00:00:00Z", SUPERVISOR), customer_id="C-1", name="n", timezone="Asia/Shanghai", tier="A",
        preferred_channel="email", contacts={},
    )
    assert c.hold_in_force(utc("2026-03-02T00:00:00Z")) is None
    c.place_hold(ctx("2026-03-02T00:00:00Z", SUPERVISOR), reason="bankruptcy", until=utc("2026-03-10T00:00:00Z"))
    hold = c.hold_in_force(utc("2026-03-09T23:59:59Z"))
    assert hold is not None and (hold.scope, hold.reason, hold.placed_by) == ("customer", "bankruptcy", "supervisor:sue")
    assert c.hold_in_force(utc("2026-03-10T00:00:00Z")) is None
    with pytest.raises(RuleViolationError) as refused:
        c.release_hold(ctx("2026-03-11T00:00:00Z", SUPERVISOR), reason="x")
    assert refused.value.rule_id == "hold.not_in_force"
    c.place_hold(ctx("2026-03-12T00:00:00Z", SUPERVISOR), reason="again")
    c.release_hold(ctx("2026-03-13T00:00:00Z", SUPERVISOR), reason="cleared")
    assert c.hold is None


# ---- the detective rules read the holds ---------------------------------------------------
# The helpers' standard receivable: Shanghai, due Wednesday 7 February 2024; the reminder is
# owed by the end of 31 January, the follow-up by the end of 8 February.


def test_a_deadline_that_fell_while_held_is_owed_from_the_release_and_none_while_still_held():
    from collections_es.domain.compliance import fact_of, findings_as_of

    from .helpers import POLICY as STORY_POLICY
    from .helpers import fall_due as story_fall_due
    from .helpers import hold as story_hold
    from .helpers import issue as story_issue
    from .helpers import release_hold as story_release
    from .helpers import start_follow_up as story_follow_up
    from .helpers import story

    def found(*calls, now: str) -> list[str]:
        _, events = story(*calls)
        facts = [fact_of(e) for e in events]
        return [f.rule_id for f in findings_as_of(facts, {STORY_POLICY.version: STORY_POLICY}, "r-1", utc(now))]

    held_story = (story_issue(), story_hold(at="2024-01-20T02:00:00+00:00"), story_fall_due())
    assert found(*held_story, now="2024-03-01T00:00:00Z") == []  # still held: nothing was owed
    # Released on Saturday 10 February: the reminder is moot, the follow-up owed by the end of Monday 12.
    released_story = (*held_story, story_release(at="2024-02-10T02:00:00+00:00"))
    assert found(*released_story, now="2024-02-12T15:59:59Z") == []
    assert found(*released_story, now="2024-02-12T16:00:00Z") == ["follow_up.not_started_in_time"]
    assert found(*released_story, story_follow_up(at="2024-02-12T02:00:00+00:00"), now="2024-03-01T00:00:00Z") == []
    # A hold that ended by itself before the reminder day leaves the reminder owed as usual.
    short = (story_issue(), story_hold(at="2024-01-20T02:00:00+00:00", until="2024-01-25T00:00:00+00:00"), story_fall_due())
    assert found(*short, now="2024-02-01T00:00:00Z") == ["reminder.not_sent_in_time"]
