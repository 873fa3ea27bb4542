"""Holds: a supervisor pauses collection on a customer or on one receivable.

While a hold is in force, the time-driven commands that act on the customer
(`SUSPENDED`) do not fire and the service sends nothing; the calendar's facts
(falling due, the limitation warning, charges accruing) still happen. When the
hold is released, or its `until` passes, collection resumes from that moment:
what came due while held is owed at once, once (ADR 0052).

This module is the one place that says which time-driven commands a hold
suspends (`suspends`), whether something is held at an instant (`is_held`) and
from when suspended work may fire again (`deferral`). The timers
(`schedule.owed`), the receivable's own refusal, the notifier and other
time-driven work (strategies' re-planning, charges' accrual) ask here.

A receivable keeps its holds as plain dicts (one per scope: its own, and its
customer's, which the application copies onto each open receivable):
`{"scope", "reason", "until" (an instant or None), "placed_by", "placed_at"}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import RuleViolationError

#: A receivable's own hold, or its customer's (copied onto the receivable).
SCOPES: tuple[str, ...] = ("receivable", "customer")

#: The time-driven commands a hold suspends: the steps of collection that act on the customer.
#: Not suspended: `fall_due` (a fact of the calendar), `warn_limitation` (the period runs on
#: whatever the hold; the warning protects the claim and sends nothing), `keep_promise`
#: (a note that payments covered a promise), and charges' accrual (not collection activity).
SUSPENDED: frozenset[str] = frozenset(
    {"send_reminder", "start_follow_up", "escalate", "break_promise", "remind_installment"}
)

#: The latest instant a hold may run to (dates in the API end in 2199).
LATEST_UNTIL = datetime.fromisoformat("2199-12-31T23:59:59+00:00")


def suspends(command: str) -> bool:
    """Whether a hold stops `command` from firing by time."""
    return command in SUSPENDED


@dataclass(frozen=True)
class Hold:
    scope: str
    reason: str
    until: datetime | None
    placed_by: str
    placed_at: datetime

    @classmethod
    def of(cls, held: Mapping[str, Any]) -> Hold:
        return cls(held["scope"], held["reason"], held.get("until"), held["placed_by"], held["placed_at"])

    def in_force(self, at: datetime) -> bool:
        """Placed by `at` and not yet ended by its `until`."""
        return self.placed_at <= at and (self.until is None or at < self.until)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "reason": self.reason,
            "until": self.until,
            "placed_by": self.placed_by,
            "placed_at": self.placed_at,
        }


def in_force(holds: Iterable[Mapping[str, Any]], at: datetime) -> list[Hold]:
    """The holds in force at `at`, receivable's own first."""
    found = [Hold.of(h) for h in holds]
    return sorted((h for h in found if h.in_force(at)), key=lambda h: SCOPES.index(h.scope))


def is_held(holds: Iterable[Mapping[str, Any]], at: datetime) -> bool:
    return bool(in_force(holds, at))


def held_until(holds: Iterable[Mapping[str, Any]], at: datetime) -> datetime | None:
    """When the holds in force at `at` end by themselves; None when one has no end (or none is in force)."""
    current = in_force(holds, at)
    if not current or any(h.until is None for h in current):
        return None
    return max(h.until for h in current if h.until is not None)


@dataclass(frozen=True)
class Deferral:
    """How holds bear on suspended work computed at some instant: `indefinite` while a hold
    without an end is in force; else it waits until `not_before` (None: no wait)."""

    indefinite: bool
    not_before: datetime | None


def deferral(holds: Iterable[Mapping[str, Any]], resumed_at: datetime | None, since: datetime) -> Deferral:
    """What suspended timers computed at `since` must respect.

    A hold in force at `since` without an end suspends them with no date. Otherwise they wait
    for the latest end any hold has or had (each hold's `until`, and `resumed_at`, when the
    last hold was released or ran out): what came due before that moment is owed at it, so
    collection resumes from then, and each catch-up firing is a new instant (fired once).
    """
    kept = [Hold.of(h) for h in holds]
    if any(h.until is None and h.in_force(since) for h in kept):
        return Deferral(True, None)
    ends = [h.until for h in kept if h.until is not None]
    if resumed_at is not None:
        ends.append(resumed_at)
    return Deferral(False, max(ends) if ends else None)


def check_until(until: datetime | None, now: datetime) -> datetime | None:
    """A hold's end: an instant with its time zone, after now, by the end of 2199 (kept in UTC)."""
    if until is None:
        return None
    if not isinstance(until, datetime) or until.tzinfo is None or until.utcoffset() is None:
        raise RuleViolationError("field.timezone", "'until' needs a time zone, e.g. 2026-03-01T09:00:00Z", field="until")
    if until > LATEST_UNTIL:
        raise RuleViolationError("field.date_range", f"'until' is after {LATEST_UNTIL.date()}", field="until")
    if until <= now:
        raise RuleViolationError("hold.until_past", f"'until' must be after now ({now.isoformat()})", field="until")
    return until.astimezone(UTC)


def describe(hold: Hold) -> str:
    until = f" until {hold.until.isoformat()}" if hold.until is not None else ""
    return f"{hold.scope} hold{until} ({hold.reason})"
