"""Durable timers: for each open receivable, the next moments something is owed.

Derived from the log, never hand-edited: after each receivable event the
receivable's timers are recomputed from its state at that event's version and
the policy version and strategy that event recorded, so a rebuild gives the same timers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.schedule import owed
from collections_es.domain.strategy import effective, hours_of

from . import rows as rowlib
from .base import Item, Projection, metadata

timers = sa.Table(
    "rm_timers",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime(), nullable=False, index=True),  # naive UTC on every database
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
)

firings = sa.Table(
    "timer_firings",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime(), primary_key=True),
    sa.Column("fired_at", sa.DateTime(), nullable=False),
    sa.Column("outcome", sa.String(300), nullable=False),
)


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _fired() -> sa.Exists:
    """The timer's firing is noted."""
    return sa.exists().where(
        firings.c.receivable_id == timers.c.receivable_id,
        firings.c.kind == timers.c.kind,
        firings.c.at == timers.c.at,
    )


class SqlTimerStore:
    """The scheduler's view of the timers (its `TimerStore` port): what is due, and which
    firings are noted. A timer's firing is keyed by (receivable, kind, instant)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[firings])

    def count_due(self, now: datetime) -> int:
        """How many timers are due at or before `now` and have not fired (the metrics' gauge)."""
        query = sa.select(sa.func.count()).select_from(timers).where(timers.c.at <= _naive(now), ~_fired())
        with self.engine.execution_options(read_only=True).connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def due(self, now: datetime, limit: int) -> list[Any]:
        """Timers due at or before `now` that have not fired, earliest first (an index range)."""
        query = (
            sa.select(timers)
            .where(timers.c.at <= _naive(now), ~_fired())
            .order_by(timers.c.at, timers.c.receivable_id, timers.c.kind)
            .limit(limit)
        )
        with self.engine.execution_options(read_only=True).connect() as conn:
            return list(conn.execute(query))

    def note_fired(self, timer: Any, fired_at: datetime, outcome: str) -> None:
        """Note a firing once; another scheduler that noted it first wins (its command was recorded once either way)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    firings.insert().values(
                        receivable_id=timer.receivable_id, kind=timer.kind, at=timer.at, fired_at=_naive(fired_at), outcome=outcome
                    )
                )
        except sa.exc.IntegrityError:
            pass


class Timers(Projection):
    name = "timers"
    tables = (timers,)

    CACHE_SIZE = 20_000

    def __init__(
        self,
        load: Callable[[Any, int], Receivable],
        policy: Callable[[str], CollectionPolicy],
    ) -> None:
        self.load = load
        self.policy = policy
        # Receivables as of the last event this projection saw, so following the log
        # (and rebuilding) evolves them from the events instead of loading each one.
        # A rolled-back batch leaves an entry ahead of the log: its version no longer
        # fits the next event, so it is loaded again.
        self._cache: OrderedDict[Any, Receivable] = OrderedDict()

    def _evolved(self, events: list[Any]) -> Receivable:
        """The receivable after `events` (one receivable's, in order)."""
        first, last = events[0], events[-1]
        cached = self._cache.pop(first.originator_id, None)
        if isinstance(first, Receivable.Issued):
            cached = None
        elif cached is None or cached.version != first.originator_version - 1:
            cached = self.load(last.originator_id, last.originator_version)
            events = []
        for event in events:
            cached = event.mutate(cached)
        assert cached is not None
        self._cache[last.originator_id] = cached
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return cached

    @property
    def handles(self) -> Sequence[type]:
        return Receivable.event_classes()

    def prepare(self, events: list[Any]) -> dict[str, list[dict[str, Any]]]:
        """Each receivable's timers after the last of its events in the batch:
        timers are replaced whole, so earlier events of the batch need no load."""
        per_receivable: dict[Any, list[Any]] = {}
        for event in events:
            per_receivable.setdefault(event.originator_id, []).append(event)
        rows: dict[str, list[dict[str, Any]]] = {}
        for rid, its_events in per_receivable.items():
            event = its_events[-1]
            receivable = self._evolved(its_events)
            # The policy the last event recorded, as the strategy it followed makes it (ADR 0050).
            policy = effective(self.policy(event.policy_version), event.strategy, hours_of(receivable.contact_hours))
            rows[str(rid)] = [
                {
                    "receivable_id": str(rid),
                    "kind": t.kind,
                    "at": t.at.astimezone(UTC).replace(tzinfo=None),
                    "command": t.command,
                    "reason": t.reason,
                    "policy_version": event.policy_version,
                }
                for t in owed(receivable, policy, event.timestamp)
            ]
        return rows

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        """Replace the timers of every receivable in the batch with its final ones."""
        ids = sorted(prepared)
        for i in range(0, len(ids), rowlib.CHUNK):
            conn.execute(timers.delete().where(timers.c.receivable_id.in_(ids[i : i + rowlib.CHUNK])))
        rows = [row for rid in ids for row in prepared[rid]]
        if rows:
            conn.execute(timers.insert(), rows)
