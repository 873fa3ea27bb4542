"""The dated plan a receivable would follow under a policy, if nothing but time happened.

Pure: a copy of the receivable is driven through its timers (domain/schedule.py), each
fired at its own instant as the scheduler would fire it, by the same command methods,
until nothing more is owed before `until`. No payment, contact or person's command is
imagined: the plan is what time alone would do. `policy simulate` (CLI and HTTP) shows it
for a candidate policy beside the policy in force (ADR 0051).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .compliance import channel_for
from .errors import CollectionsError
from .policy import CollectionPolicy
from .receivable import Receivable
from .schedule import Timer, owed
from .trail import SCHEDULER_ACTOR, Actor, Context

MAX_STEPS = 100
_SIMULATOR = Actor(SCHEDULER_ACTOR, "service")


@dataclass(frozen=True)
class PlannedStep:
    """One thing time would do: the timer, when, and the state it would leave."""

    at: datetime
    kind: str
    command: str
    reason: str
    state_after: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "command": self.command,
            "reason": self.reason,
            "state_after": self.state_after,
        }


def plan(
    receivable: Receivable,
    policy: CollectionPolicy,
    strategy: str | None,
    *,
    since: datetime,
    until: datetime,
    preferred_channel: str,
) -> list[PlannedStep]:
    """What time alone would do to `receivable` from `since` to `until` under `policy` (the
    effective policy of `strategy`), in time order. The receivable itself is not touched."""
    r = copy.deepcopy(receivable)
    now = since
    steps: list[PlannedStep] = []
    done: set[tuple[str, datetime]] = set()
    for _ in range(MAX_STEPS):
        timers = [t for t in owed(r, policy, now) if t.at <= until and (t.kind, t.at) not in done]
        if not timers:
            break
        timer = timers[0]
        done.add((timer.kind, timer.at))
        now = max(now, timer.at)
        ctx = Context(_SIMULATOR, now, "simulation", policy, scheduled_for=timer.at, strategy=strategy)
        try:
            getattr(r, timer.command)(ctx, **_fields(timer, r, policy, preferred_channel))
        except CollectionsError:
            continue  # refused when due, as the scheduler would note it skipped
        steps.append(PlannedStep(now, timer.kind, timer.command, timer.reason, r.state))
    return steps


def _fields(timer: Timer, r: Receivable, policy: CollectionPolicy, preferred_channel: str) -> dict[str, Any]:
    """The command's fields as the scheduler gives them (application/scheduler.py)."""
    if timer.command in ("send_reminder", "remind_installment"):
        return {"channel": channel_for(preferred_channel, r.state, policy)}
    if timer.command in ("break_promise", "escalate"):
        return {"reason": timer.reason}
    return {}
