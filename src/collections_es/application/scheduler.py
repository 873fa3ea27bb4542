"""The scheduler: fires the timers that are due, each as an ordinary command by
`system:scheduler`, in time order, exactly once.

`tick(now)` reads only timers due at or before `now` (an index range), so its
cost grows with the work due, not with the number of receivables. A timer's
firing is keyed by (receivable, kind, instant): the command carries that key as
its idempotency key, so two schedulers firing one timer record one event, and
the firing is noted so a refused or no-longer-needed timer is not retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..domain.compliance import channel_for
from ..domain.errors import CommandNotAllowedError, NotFoundError, RuleViolationError
from ..domain.trail import SCHEDULER_ACTOR, Actor
from .. import logs
from .clock import SandboxClock
from .commands import TIME_DRIVEN
from .service import Collections, Idempotency, Request

log = logging.getLogger(__name__)

SCHEDULER = Actor(SCHEDULER_ACTOR, "service")
BATCH = 100


class TimerStore(Protocol):
    """Where the timers are kept (the timers read model; bootstrap wires it)."""

    def due(self, now: datetime, limit: int) -> list[Any]:
        """Timers due at or before `now` not yet fired, earliest first: rows with
        receivable_id, kind, at (naive UTC), command, reason."""

    def note_fired(self, timer: Any, fired_at: datetime, outcome: str) -> None:
        """Note that `timer` fired (idempotent)."""


@dataclass(frozen=True)
class Fired:
    receivable_id: str
    kind: str
    command: str
    scheduled_for: datetime
    fired_at: datetime
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "receivable_id": self.receivable_id,
            "kind": self.kind,
            "command": self.command,
            "scheduled_for": self.scheduled_for,
            "fired_at": self.fired_at,
            "outcome": self.outcome,
        }


def _log_run(what: str, fired: list[Fired]) -> None:
    """One line per run (its id is bound): how many timers fired, how many were skipped."""
    skipped = sum(1 for f in fired if f.outcome != "fired")
    level = logging.INFO if fired else logging.DEBUG  # an idle tick every 30 s is no news
    log.log(level, what, extra={"fired": len(fired) - skipped, "skipped": skipped})


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


class Scheduler:
    def __init__(self, app: Collections, store: TimerStore, catch_up: Callable[[], object]) -> None:
        self.app = app
        self.store = store
        self.catch_up = catch_up  # brings the timers read model up to the log

    def due(self, now: datetime, limit: int = BATCH) -> list[Any]:
        """Timers due at or before `now` that have not fired, earliest first."""
        return self.store.due(now, limit)

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """Fire everything due at or before `now` (default: the clock's now), catching up after downtime."""
        now = now or self.app.clock.now()
        run = f"scheduler:{uuid.uuid4()}"
        fired: list[Fired] = []
        with logs.bound(scheduler_run=run):
            while True:
                self.catch_up()
                rows = self.due(now)
                if not rows:
                    _log_run("scheduler tick", fired)
                    return fired
                fired += [self.fire(row, run) for row in rows]

    def advance(self, clock: SandboxClock, to: datetime) -> list[Fired]:
        """Move a sandbox clock to `to`, firing each timer on the way at its own instant."""
        if to < clock.now():
            clock.advance(to)  # raises: the sandbox clock only moves forward
        run = f"sandbox:{uuid.uuid4()}"
        fired: list[Fired] = []
        with logs.bound(scheduler_run=run):
            for row in self._due_one_by_one(to):
                at = _aware(row.at)
                if at > clock.now():
                    clock.advance(at)
                fired.append(self.fire(row, run))
            clock.advance(to)
            _log_run("sandbox advance", fired)
        return fired

    def _due_one_by_one(self, to: datetime) -> Iterator[Any]:
        while True:
            self.catch_up()
            rows = self.due(to, limit=1)
            if not rows:
                return
            yield rows[0]

    def fire(self, row: Any, run: str) -> Fired:
        scheduled_for = _aware(row.at)
        key = f"timer:{row.receivable_id}:{row.kind}:{scheduled_for.isoformat()}"
        request = Request(SCHEDULER, correlation_id=run, idempotency=Idempotency(key, key), scheduled_for=scheduled_for)
        rid = uuid.UUID(row.receivable_id)
        outcome = "fired"
        try:
            if row.command not in TIME_DRIVEN:  # the declaration says whether time may fire a command
                outcome = f"skipped: '{row.command}' is not a time-driven command"
            else:
                self.app.execute(request, rid, row.command, **self._fields(row, rid))
        except (CommandNotAllowedError, RuleViolationError, NotFoundError) as exc:
            outcome = f"skipped: {exc}"[:300]
        fired_at = self.app.clock.now()
        self.store.note_fired(row, fired_at, outcome)
        return Fired(row.receivable_id, row.kind, row.command, scheduled_for, fired_at, outcome)

    def _fields(self, row: Any, rid: uuid.UUID) -> dict[str, Any]:
        """The command's fields. Whether it is still owed is the domain's to decide:
        a refusal (e.g. `promise.not_broken` after a late payment) is noted as skipped."""
        if row.command in ("send_reminder", "remind_installment"):
            receivable = self.app.get_receivable(rid)
            customer = self.app.get_customer(receivable.customer_id)
            policy = self.app.strategy_for(receivable, customer).policy  # the strategy's channels
            return {"channel": channel_for(customer.preferred_channel, receivable.state, policy)}
        if row.command in ("break_promise", "escalate"):
            return {"reason": row.reason}
        if row.command == "accrue_charges":  # through the day before the timer's (its month's end)
            receivable = self.app.get_receivable(rid)
            return {"through": receivable.local_date(_aware(row.at)) - timedelta(days=1)}
        return {}
