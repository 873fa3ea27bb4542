"""Projection machinery: follow the event log, write view rows and the position
in one transaction, so an event is applied exactly once even across crashes.

The position is advanced with a conditional UPDATE (`WHERE position = :old`):
if another worker moved it first, this transaction rolls back and nothing is
applied twice (LIBRARIES.md: never trust a read-then-write tracking update).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

metadata = sa.MetaData()

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


class Projection(ABC):
    """A read model: its tables, the event types it reads, and how it applies them."""

    name: str
    tables: Sequence[sa.Table]

    @property
    @abstractmethod
    def handles(self) -> Sequence[type]:
        """Event classes this projection reads; other events only advance its position."""

    def prepare(self, events: list[Any]) -> Any:
        """Reads a batch needs, done before its transaction opens (default: none)."""
        return None

    @abstractmethod
    def apply(self, conn: sa.Connection, event: Any, position: int, prepared: Any) -> None:
        """Write what `event` changes. Runs inside the batch's transaction."""

    def topics(self) -> list[str]:
        return [get_topic(cls) for cls in self.handles]

    def clear(self, conn: sa.Connection) -> None:
        for table in reversed(self.tables):
            conn.execute(table.delete())


class ProjectionRunner:
    """Pulls notifications from the application's log into each projection."""

    def __init__(self, app: Application, engine: sa.Engine, projections: Iterable[Projection], *, batch_size: int = 500):
        self.app = app
        self.engine = engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self._lock = threading.Lock()
        metadata.create_all(engine)
        with engine.begin() as conn:
            for name in self.projections:
                exists = conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name)).first()
                if exists is None:
                    conn.execute(tracking.insert().values(name=name, position=0))

    def position(self, name: str) -> int:
        with self.engine.execution_options(read_only=True).connect() as conn:
            return int(conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name)).scalar_one())

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def lag(self) -> dict[str, int]:
        head = self.head()
        return {name: head - self.position(name) for name in self.projections}

    def run_once(self, name: str) -> int:
        """Apply one batch to one projection; returns how many notifications it consumed.

        Reads the projection needs (`prepare`) happen before the transaction, so
        it never waits on the event store while holding a database write lock.
        The transaction first locks this projection's tracking row (PostgreSQL;
        SQLite's BEGIN IMMEDIATE already serialises writers), so a second worker
        waits, then sees the position moved and applies nothing.
        """
        projection = self.projections[name]
        start = self.position(name)
        notifications = self.app.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        wanted = set(projection.topics())
        events = [(self._decode(n), n.id) for n in notifications if n.topic in wanted]
        prepared = projection.prepare([event for event, _ in events])
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(tracking.c.position).where(tracking.c.name == name).with_for_update()
            ).scalar_one()
            if current != start:
                return 0  # another worker applied this batch first
            for event, position in events:
                projection.apply(conn, event, position, prepared)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=notifications[-1].id))
        return len(notifications)

    def catch_up(self, names: Iterable[str] | None = None) -> int:
        """Run every (or the named) projection until it reaches the head of the log."""
        total = 0
        with self._lock:
            for name in names or list(self.projections):
                while True:
                    done = self.run_once(name)
                    total += done
                    if done < self.batch_size:
                        break
        return total

    def rebuild(self, name: str) -> int:
        projection = self.projections[name]
        with self._lock:
            with self.engine.begin() as conn:
                projection.clear(conn)
                conn.execute(tracking.update().where(tracking.c.name == name).values(position=0))
        return self.catch_up([name])

    def _decode(self, notification: Notification) -> Any:
        return self.app.mapper.to_domain_event(notification)
