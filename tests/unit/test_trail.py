"""The trail: every event says who, when, why and under which policy, and is
linked into a hash chain; replaying the events rebuilds the aggregate without
ever asking the state machine."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from collections_es.domain import lifecycle
from collections_es.domain.customer import Customer
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.receivable import Receivable
from collections_es.domain.trail import GENESIS_HASH, Actor, event_hash, stored_event_hash

from .helpers import (
    COLLECTOR,
    POLICY,
    SCHEDULER,
    SUPERVISOR,
    Call,
    agree_installment_plan,
    approve_write_off,
    assign_collector,
    break_promise,
    context,
    escalate,
    fall_due,
    issue,
    names,
    promise_to_pay,
    raise_dispute,
    record_contact,
    record_payment,
    record_recovery,
    refer_to_legal,
    replay,
    request_write_off,
    resolve_dispute,
    send_reminder,
    start_follow_up,
    story,
)

LEGAL = Actor("legal:lee", "legal")


def in_context(c: Call, n: int, actor: Actor, when: str, **extra: Any) -> Call:
    """The call sent by `actor` at `when`, with correlation id `corr-<n>` and policy version `v<n>`."""
    policy = POLICY.model_copy(update={"version": f"v{n}"})
    return c.in_context(context(when, actor, correlation_id=f"corr-{n}", policy=policy, **extra))


def long_story() -> list[Call]:
    """A receivable through most of its lifecycle, each step by its own actor, time and correlation."""
    steps = [
        (issue(), SCHEDULER, "2024-01-08T02:00:00+00:00"),
        (send_reminder(), SCHEDULER, "2024-02-01T01:00:00+00:00"),
        (fall_due(), SCHEDULER, "2024-02-06T16:00:00+00:00"),
        (start_follow_up(channel="phone"), COLLECTOR, "2024-02-08T02:00:00+00:00"),
        (record_contact(outcome="acknowledged"), COLLECTOR, "2024-02-09T03:00:00+00:00"),
        (promise_to_pay("300", promised_on=date(2024, 2, 20)), COLLECTOR, "2024-02-09T03:05:00+00:00"),
        (record_payment("100"), SCHEDULER, "2024-02-19T09:00:00+00:00"),
        (break_promise(), SCHEDULER, "2024-02-24T00:00:00+00:00"),
        (
            agree_installment_plan(
                [{"due_on": date(2024, 3, 1), "amount": "450"}, {"due_on": date(2024, 4, 1), "amount": "450"}]
            ),
            COLLECTOR,
            "2024-02-26T02:00:00+00:00",
        ),
        (break_promise(), SCHEDULER, "2024-03-05T00:00:00+00:00"),
        (raise_dispute(), COLLECTOR, "2024-03-06T02:00:00+00:00"),
        (resolve_dispute("900"), SUPERVISOR, "2024-03-07T02:00:00+00:00"),
        (assign_collector("collector:bob"), SUPERVISOR, "2024-03-08T02:00:00+00:00"),
        (refer_to_legal(), LEGAL, "2024-04-01T02:00:00+00:00"),
        (request_write_off(), LEGAL, "2024-06-01T02:00:00+00:00"),
        (approve_write_off(), SUPERVISOR, "2024-06-02T02:00:00+00:00"),
        (record_recovery("50"), SCHEDULER, "2024-07-01T02:00:00+00:00"),
    ]
    return [in_context(c, n, actor, when) for n, (c, actor, when) in enumerate(steps)]


@pytest.fixture(scope="module")
def history() -> tuple[list[Call], Receivable, list[Any]]:
    calls = long_story()
    receivable, events = story(*calls)
    return calls, receivable, events


def test_the_long_story_visits_the_lifecycle(history):
    _, receivable, events = history
    assert receivable.state == "written_off"
    assert [e.state_after for e in events] == [
        "issued",
        "reminded",
        "due",
        "following_up",
        "following_up",
        "promised",
        "promised",
        "overdue_escalated",
        "promised",
        "overdue_escalated",
        "overdue_escalated",
        "overdue_escalated",
        "overdue_escalated",
        "legal",
        "legal",
        "written_off",
        "written_off",
    ]
    assert len(set(names(events))) == 16  # every event type but Escalated


# ---- who, when, why, under which policy -------------------------------------


def test_every_event_carries_its_actor_correlation_policy_and_time(history):
    calls, _, events = history
    assert len(calls) == len(events)
    for c, event in zip(calls, events, strict=True):
        assert event.actor_id == c.ctx.actor.id
        assert event.actor_role == c.ctx.actor.role
        assert event.correlation_id == c.ctx.correlation_id
        assert event.policy_version == c.ctx.policy.version
        assert event.timestamp == c.ctx.now
        assert event.scheduled_for is None
        assert event.override is None


def test_every_event_records_the_state_it_left_the_receivable_in(history):
    _, _, events = history
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
        assert aggregate.state == event.state_after
        assert event.state_after in lifecycle.STATES


def test_the_aggregate_remembers_the_policy_version_of_its_last_event(history):
    _, receivable, events = history
    assert receivable.policy_version == events[-1].policy_version == f"v{len(events) - 1}"


def test_a_scheduled_command_records_when_it_was_due():
    due_at = datetime.fromisoformat("2024-02-06T16:00:00+00:00")
    ctx = context("2024-02-06T16:05:00+00:00", SCHEDULER, scheduled_for=due_at)
    _, events = story(issue(), fall_due().in_context(ctx))
    assert events[-1].scheduled_for == due_at
    assert events[-1].override is None
    assert stored_event_hash(events[-1]) == events[-1].hash


def test_an_override_records_its_rule_and_reason_in_the_hashed_event():
    # The supervisor who asked for the write-off approves it: four eyes, passed by an override.
    ctx = context(
        "2024-02-21T02:00:00+00:00",
        SUPERVISOR,
        override_rule_id="write_off.four_eyes",
        override_reason="the second approver is on leave",
    )
    _, events = story(
        issue(), fall_due(), escalate(), request_write_off(by=SUPERVISOR), approve_write_off().in_context(ctx)
    )
    assert events[-1].override == {"rule_id": "write_off.four_eyes", "reason": "the second approver is on leave"}
    assert stored_event_hash(events[-1]) == events[-1].hash


def test_the_breaches_a_contact_was_recorded_with_are_in_its_hashed_event():
    night = record_contact().at("2024-02-07T16:05:00+00:00")  # 00:05 in Shanghai
    _, events = story(issue(), fall_due(), night)
    assert events[-1].breaches_found[0]["rule_id"] == "contact.outside_window"
    assert stored_event_hash(events[-1]) == events[-1].hash
    assert stored_event_hash(dataclasses.replace(events[-1], breaches_found=None)) != events[-1].hash


# ---- the hash chain ---------------------------------------------------------


def test_the_first_event_links_to_the_genesis_hash(history):
    _, _, events = history
    assert events[0].prev_hash == GENESIS_HASH == "0" * 64


def test_each_event_links_to_the_hash_of_the_one_before(history):
    _, receivable, events = history
    for previous, event in zip(events, events[1:]):
        assert event.prev_hash == previous.hash
    assert receivable.last_hash == events[-1].hash


def test_each_stored_hash_is_recomputed_from_the_event(history):
    _, _, events = history
    for event in events:
        assert len(event.hash) == 64
        assert stored_event_hash(event) == event.hash


def test_no_two_events_share_a_hash(history):
    _, _, events = history
    assert len({e.hash for e in events}) == len(events)


def _altered(value: Any) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if value is None:
        return "tampered"
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, Decimal):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    if isinstance(value, date):
        return value + timedelta(days=1)
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, dict):
        return {**value, "tampered": True}
    if isinstance(value, list):
        return [*value, {"tampered": True}]
    raise AssertionError(f"no alteration for {type(value)}")


def _fields_of(events: list[Any]) -> list[tuple[int, str]]:
    return [(i, f.name) for i, e in enumerate(events) for f in dataclasses.fields(e) if f.name != "hash"]


def test_changing_any_field_of_any_event_changes_its_hash(history):
    _, _, events = history
    checked = 0
    for i, name in _fields_of(events):
        event = events[i]
        tampered = dataclasses.replace(event, **{name: _altered(getattr(event, name))})
        assert stored_event_hash(tampered) != event.hash, f"{type(event).__name__}.{name} is not covered by the hash"
        checked += 1
    assert checked > 17 * 10


def test_changing_an_amount_by_a_cent_or_a_date_by_a_day_is_detected(history):
    _, _, events = history
    payment = next(e for e in events if type(e).__name__ == "PaymentRecorded")
    assert stored_event_hash(dataclasses.replace(payment, amount=payment.amount + Decimal("0.01"))) != payment.hash
    assert stored_event_hash(dataclasses.replace(payment, paid_on=payment.paid_on + timedelta(days=1))) != payment.hash


def test_the_hash_depends_on_the_event_type():
    content = {"a": 1}
    assert event_hash("Receivable.Escalated", content) != event_hash("Receivable.ReferredToLegal", content)


def test_identical_commands_on_different_receivables_give_different_hashes():
    _, a = story(issue(invoice_number="INV-A"))
    _, b = story(issue(invoice_number="INV-B"))
    assert a[0].hash != b[0].hash


def test_a_customer_file_is_trailed_and_chained_too():
    ctx = context("2024-01-01T00:00:00+00:00", SUPERVISOR, correlation_id="corr-cust")
    customer = Customer.register(
        ctx,
        customer_id="CUST-1",
        name="Shanghai Widgets Ltd",
        timezone="Asia/Shanghai",
        tier="gold",
        preferred_channel="wechat",
        contacts={"email": "ap@widgets.example", "phone": None},
    )
    (event,) = customer.collect_events()
    assert (event.actor_id, event.actor_role, event.correlation_id) == (SUPERVISOR.id, "supervisor", "corr-cust")
    assert event.policy_version == POLICY.version
    assert event.timestamp == ctx.now
    assert event.prev_hash == GENESIS_HASH
    assert stored_event_hash(event) == event.hash
    assert customer.contacts == {"email": "ap@widgets.example"}
    assert replay([event]) == customer


@pytest.mark.parametrize(
    ("overrides", "rule_id"),
    [({"timezone": "Mars/Olympus"}, "timezone.unknown"), ({"name": " "}, "field.required"), ({"preferred_channel": "fax"}, "field.choice")],
)
def test_a_customer_file_with_bad_fields_is_refused(overrides, rule_id):
    fields = {
        "customer_id": "CUST-1",
        "name": "Widgets",
        "timezone": "UTC",
        "tier": "standard",
        "preferred_channel": "email",
        "contacts": {},
    }
    with pytest.raises(RuleViolationError) as info:
        Customer.register(context(), **{**fields, **overrides})
    assert info.value.rule_id == rule_id


# ---- replay -----------------------------------------------------------------


def test_replaying_the_events_rebuilds_an_equal_receivable(history):
    _, receivable, events = history
    rebuilt = replay(events)
    assert rebuilt == receivable
    assert rebuilt.version == len(events)
    assert (rebuilt.state, rebuilt.balance, rebuilt.recovered) == (receivable.state, receivable.balance, receivable.recovered)


def test_replaying_a_prefix_gives_the_receivable_as_it_was_then():
    calls = long_story()
    receivable = None
    snapshots = []
    for c in calls:
        receivable = c.run(receivable)
        receivable.collect_events()  # keep pending events out of the comparison
        snapshots.append(copy.deepcopy(receivable))
    _, events = story(*calls)
    for n in range(1, len(events) + 1):
        assert replay(events[:n]) == snapshots[n - 1]


def test_replay_never_consults_the_state_machine(history, monkeypatch):
    _, receivable, events = history

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("replay consulted the state machine")

    monkeypatch.setattr(lifecycle, "next_state", refuse)
    monkeypatch.setattr(lifecycle, "allowed_commands", refuse)
    monkeypatch.setattr(lifecycle, "_run_machine", refuse)
    monkeypatch.setattr(lifecycle.ReceivableLifecycle, "__init__", refuse)
    # the patch is live: a command would now fail...
    with pytest.raises(AssertionError, match="consulted"):
        escalate().run(replay(events[:3]))
    # ...but replay does not care.
    assert replay(events) == receivable


def test_replay_does_not_validate_again(history, monkeypatch):
    # An event recorded under yesterday's rules replays even if today's rules would refuse it.
    _, receivable, events = history

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("replay validated again")

    for name in ("to_money", "check_currency", "_require_text", "_require_choice"):
        monkeypatch.setattr(f"collections_es.domain.receivable.{name}", refuse)
    assert replay(events) == receivable
