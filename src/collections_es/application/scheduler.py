"""The scheduler: fires the timers that are due, each as an ordinary command by
`system:scheduler`, in time order, exactly once.

`tick(now)` reads only timers due at or before `now` (an index range), so its
cost grows with the work due, not with the number of receivables. A timer's
firing is keyed by (receivable, kind, instant): the command carries that key as
its idempotency key, so two schedulers firing one timer record one event, and
the firing is noted so a refused or no-longer-needed timer is not retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from projections.base import ProjectionRunner, metadata
from projections.timers import timers

from ..domain.compliance import channel_for
from ..domain.errors import CommandNotAllowedError, NotFoundError, RuleViolationError
from ..domain.trail import SCHEDULER_ACTOR, Actor
from .clock import SandboxClock
from .service import Collections, Idempotency, Request

SCHEDULER = Actor(SCHEDULER_ACTOR, "service")
BATCH = 100

firings = sa.Table(
    "timer_firings",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime(), primary_key=True),
    sa.Column("fired_at", sa.DateTime(), nullable=False),
    sa.Column("outcome", sa.String(300), nullable=False),
)


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


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


class Scheduler:
    def __init__(self, app: Collections, runner: ProjectionRunner, engine: sa.Engine) -> None:
        self.app = app
        self.runner = runner
        self.engine = engine
        metadata.create_all(engine, tables=[firings])

    def due(self, now: datetime, limit: int = BATCH) -> list[Any]:
        """Timers due at or before `now` that have not fired, earliest first."""
        fired = sa.exists().where(
            firings.c.receivable_id == timers.c.receivable_id,
            firings.c.kind == timers.c.kind,
            firings.c.at == timers.c.at,
        )
        query = (
            sa.select(timers)
            .where(timers.c.at <= _naive(now), ~fired)
            .order_by(timers.c.at, timers.c.receivable_id, timers.c.kind)
            .limit(limit)
        )
        with self.engine.execution_options(read_only=True).connect() as conn:
            return list(conn.execute(query))

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """Fire everything due at or before `now` (default: the clock's now), catching up after downtime."""
        now = now or self.app.clock.now()
        run = f"scheduler:{uuid.uuid4()}"
        fired: list[Fired] = []
        while True:
            self.runner.catch_up(["timers"])
            rows = self.due(now)
            if not rows:
                return fired
            fired += [self.fire(row, run) for row in rows]

    def advance(self, clock: SandboxClock, to: datetime) -> list[Fired]:
        """Move a sandbox clock to `to`, firing each timer on the way at its own instant."""
        if to < clock.now():
            clock.advance(to)  # raises: the sandbox clock only moves forward
        run = f"sandbox:{uuid.uuid4()}"
        fired: list[Fired] = []
        for row in self._due_one_by_one(to):
            at = _aware(row.at)
            if at > clock.now():
                clock.advance(at)
            fired.append(self.fire(row, run))
        clock.advance(to)
        return fired

    def _due_one_by_one(self, to: datetime) -> Iterator[Any]:
        while True:
            self.runner.catch_up(["timers"])
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
            self.app.execute(request, rid, row.command, **self._fields(row, rid))
        except (CommandNotAllowedError, RuleViolationError, NotFoundError) as exc:
            outcome = f"skipped: {exc}"[:300]
        fired_at = self.app.clock.now()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    firings.insert().values(
                        receivable_id=row.receivable_id, kind=row.kind, at=row.at, fired_at=_naive(fired_at), outcome=outcome
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another scheduler noted this firing first; its command was recorded once either way
        return Fired(row.receivable_id, row.kind, row.command, scheduled_for, fired_at, outcome)

    def _fields(self, row: Any, rid: uuid.UUID) -> dict[str, Any]:
        """The command's fields. Whether it is still owed is the domain's to decide:
        a refusal (e.g. `promise.not_broken` after a late payment) is noted as skipped."""
        if row.command == "send_reminder":
            receivable = self.app.get_receivable(rid)
            preferred = self.app.get_customer(receivable.customer_id).preferred_channel
            return {"channel": channel_for(preferred, receivable.state, self.app.policy())}
        if row.command in ("break_promise", "escalate"):
            return {"reason": row.reason}
        return {}
