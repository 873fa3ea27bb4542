"""What is owed next on a receivable, and when: the durable timers.

`owed(receivable, policy, since)` is a pure function of the receivable as it is
after an event, the policy in force for that event, and the event's instant.
The timers projection stores its result; the scheduler fires what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from . import calendar, holds, lifecycle
from .policy import CollectionPolicy
from .receivable import Receivable


@dataclass(frozen=True)
class Timer:
    kind: str
    at: datetime
    command: str
    reason: str


def owed(r: Receivable, policy: CollectionPolicy, since: datetime) -> list[Timer]:
    """Every timer the receivable has now, in time order."""
    tz = r.timezone
    timers: list[Timer] = []
    due_starts = calendar.start_of_day(r.due_on, tz)

    allows = lambda command: lifecycle.allows(r.state, command)  # noqa: E731 - the machine decides where each timer runs

    # Below the policy's minimum balance for the currency, nothing is sent, followed up or escalated
    # automatically (a payment that brings the balance below it ends automatic dunning).
    dunning = not r.is_below_dunning_minimum(policy)

    # Pre-due reminders: the first `reminder_lead_days` before due, each next `reminder_interval_days`
    # after the last one sent, while fewer than `max_automatic_reminders` were sent, before the due day.
    if allows("send_reminder") and dunning and r.reminders_count < policy.max_automatic_reminders:
        if r.reminders_count == 0:
            day = calendar.business_day_on_or_before(r.due_on - timedelta(days=policy.reminder_lead_days), policy)
        elif r.last_reminder_at is not None:
            day = r.local_date(r.last_reminder_at) + timedelta(days=policy.reminder_interval_days)
        else:  # reminded before reminders were counted (an older snapshot): its one reminder stands
            day = None
        if day is not None:
            at = max(calendar.first_contact_moment_on(day, tz, policy), calendar.next_contact_moment(since, tz, policy))
            if at < due_starts:
                timers.append(Timer("reminder", at, "send_reminder", f"pre-due reminder, due {r.due_on}"))
    if allows("fall_due"):
        timers.append(Timer("fall_due", due_starts, "fall_due", f"due on {r.due_on}"))
    if allows("start_follow_up") and dunning:
        day = r.due_on + timedelta(days=policy.follow_up_after_days)
        at = calendar.first_contact_moment_on(day, tz, policy)
        timers.append(Timer("follow_up", at, "start_follow_up", f"{policy.follow_up_after_days} day(s) after due"))
    if allows("escalate") and not r.is_disputed and dunning:
        at = calendar.start_of_day(r.due_on + timedelta(days=policy.escalate_after_days), tz)
        timers.append(Timer("escalate", at, "escalate", f"{policy.escalate_after_days} days past due"))
    if allows("keep_promise") and r.is_promise_covered():
        # Only histories recorded before a covering payment recorded `PromiseKept` itself
        # (ADR 0035): owed at once, so the next tick returns the receivable to collection.
        timers.append(Timer("promise_kept", since, "keep_promise", "promise covered by payments"))
    if allows("break_promise") and not r.is_disputed:
        day = r.next_commitment_check(policy.promise_grace_days)
        if day is not None:
            timers.append(
                Timer("promise_check", calendar.start_of_day(day, tz), "break_promise", "promise not kept after grace")
            )
    lead = policy.installment_reminder_lead_days
    if allows("remind_installment") and dunning and lead is not None:
        item = r.installment_to_remind()
        if item is not None:
            day = calendar.business_day_on_or_before(item["due_on"] - timedelta(days=lead), policy)
            at = max(calendar.first_contact_moment_on(day, tz, policy), calendar.next_contact_moment(since, tz, policy))
            if at < calendar.start_of_day(item["due_on"] + timedelta(days=1), tz):  # by the installment's day
                timers.append(
                    Timer("installment_reminder", at, "remind_installment", f"installment of {item['amount']} due {item['due_on']}")
                )
    if allows("warn_limitation"):
        lapses_on = r.limitation_lapses_on(policy)
        if r.limitation_warned_for != lapses_on:
            at = calendar.start_of_day(r.limitation_warning_on(policy), tz)
            timers.append(
                Timer("limitation_warning", at, "warn_limitation", f"limitation period lapses on {lapses_on}")
            )
    if allows("accrue_charges"):
        # At the start of the day after each month's end (or after the late fee's day): the
        # accrual runs through the day before the timer's (ADR 0053).
        through = r.next_accrual_day(policy.charges)
        if through is not None:
            at = calendar.start_of_day(through + timedelta(days=1), tz)
            timers.append(Timer("charges", at, "accrue_charges", f"charges through {through}"))
    return sorted(_deferred(r, sorted(timers, key=lambda t: (t.at, t.kind)), policy, since), key=lambda t: (t.at, t.kind))


#: Timers whose command reaches the customer: when deferred by a hold, they wait for a contact window.
CONTACT_BOUND: frozenset[str] = frozenset({"reminder", "follow_up", "installment_reminder"})
CATCH_UP_STEP = timedelta(seconds=1)


def _deferred(r: Receivable, timers: list[Timer], policy: CollectionPolicy, since: datetime) -> list[Timer]:
    """The timers as holds leave them (domain/holds.py, ADR 0052): a suspended command has no
    timer while a hold without an end is in force; otherwise one that came due before the hold
    ended is owed when it ended (collection resumes from then), in its original order, each
    once, those that reach the customer in a contact window. Pre-due reminders moved past the
    due date are dropped. The rest keep their instants: the calendar does not move."""
    deferral = holds.deferral(r.holds, r.resumed_at, since)
    if not deferral.indefinite and deferral.not_before is None:
        return timers
    due_starts = calendar.start_of_day(r.due_on, r.timezone)
    out: list[Timer] = []
    previous: datetime | None = None
    for t in timers:
        if not holds.suspends(t.command):
            out.append(t)
            continue
        if deferral.indefinite:
            continue
        assert deferral.not_before is not None
        if t.at >= deferral.not_before:
            out.append(t)
            continue
        at = deferral.not_before
        if t.kind in CONTACT_BOUND:
            at = calendar.next_contact_moment(at, r.timezone, policy)
        if previous is not None and at <= previous:
            at = previous + CATCH_UP_STEP  # caught up in the order they came due
        if t.kind == "reminder" and at >= due_starts:
            continue
        previous = at
        out.append(replace(t, at=at, reason=f"{t.reason} (caught up after a hold)"))
    return out
