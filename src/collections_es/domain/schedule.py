"""What is owed next on a receivable, and when: the durable timers.

`owed(receivable, policy, since)` is a pure function of the receivable as it is
after an event, the policy in force for that event, and the event's instant.
The timers projection stores its result; the scheduler fires what is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import calendar, lifecycle
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

    if allows("send_reminder") and r.state == lifecycle.INITIAL_STATE:  # a reminder is owed once, before any was sent
        day = calendar.business_day_on_or_before(r.due_on - timedelta(days=policy.reminder_lead_days), policy)
        at = max(calendar.first_contact_moment_on(day, tz, policy), calendar.next_contact_moment(since, tz, policy))
        if at < due_starts:
            timers.append(Timer("reminder", at, "send_reminder", f"pre-due reminder, due {r.due_on}"))
    if allows("fall_due"):
        timers.append(Timer("fall_due", due_starts, "fall_due", f"due on {r.due_on}"))
    if allows("start_follow_up"):
        day = r.due_on + timedelta(days=policy.follow_up_after_days)
        at = calendar.first_contact_moment_on(day, tz, policy)
        timers.append(Timer("follow_up", at, "start_follow_up", f"{policy.follow_up_after_days} day(s) after due"))
    if allows("escalate") and not r.is_disputed:
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
    return sorted(timers, key=lambda t: (t.at, t.kind))
