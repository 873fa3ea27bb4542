"""Projection machinery: follow the event log, write view rows and the position
in one transaction, so an event is applied exactly once even across crashes.

Each batch of a projection runs in one transaction that first locks the
projection's tracking row and checks the position is still the one the batch
was read from; if another worker moved it first, nothing is applied (a lesson of eventsourcing-sqlalchemy:
never trust a read-then-write tracking update). A crash before the commit loses
the whole batch, rows and position together, so it is read again.

A batch that fails is bisected: the events before the one at fault are applied, and
the failure (projection, position, event type, aggregate, error) is recorded in
`projection_failures`. The projection is *stuck* while that position is ahead of
its own; it is retried with a growing pause, the other projections go on, and
`/readyz` and `collections_projection_stuck` say so until an attempt passes or a
rebuild starts it again (ADR 0060).

Projections at the same position share one read and one decoding of each batch.
Long-running followers (`serve`, `collections-es project`) are elected per
projection with a PostgreSQL advisory lock, so one worker is active at a time;
on SQLite the write lock already makes workers take turns (ADR 0010).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

log = logging.getLogger(__name__)

metadata = sa.MetaData()

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# The last failure of each projection; it is stuck while `position` is ahead of its tracking.
failures = sa.Table(
    "projection_failures",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),  # the notification that failed to apply
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("aggregate_id", sa.String(36), nullable=False),
    sa.Column("error", sa.String(500), nullable=False),  # the error's type and first line, redacted
    sa.Column("attempts", sa.Integer, nullable=False),  # failed attempts at this position
    sa.Column("failed_at", sa.DateTime(), nullable=False),  # naive UTC, the machine's clock: the last attempt
)

MAX_RETRY_SKIPS = 64  # a stuck projection is tried again after 1, 2, 4 … 64 catch-ups (30 s at the 0.5 s poll)

Item = tuple[Any, int]  # (event, notification id)
Progress = Callable[[int, int], None]  # (position reached, head)


class Projection:
    """A read model: its tables, the event types it reads, and how it applies them.

    Implement `apply` (one event at a time) or `apply_batch` (a whole batch, for
    projections that gain from bulk reads and writes). Both run inside the
    batch's transaction; `prepare` runs before it, for reads elsewhere.
    """

    name: str
    tables: Sequence[sa.Table]

    @property
    def handles(self) -> Sequence[type]:
        """Event classes this projection reads; other events only advance its position."""
        raise NotImplementedError

    def prepare(self, events: list[Any]) -> Any:
        """Reads a batch needs, done before its transaction opens (default: none)."""
        return None

    def apply(self, conn: sa.Connection, event: Any, position: int, prepared: Any) -> None:
        """Write what `event` changes."""
        raise NotImplementedError

    def apply_batch(self, conn: sa.Connection, items: list[Item], prepared: Any) -> None:
        """Write what a batch of events changes (default: `apply` each in turn)."""
        for event, position in items:
            self.apply(conn, event, position, prepared)

    def topics(self) -> frozenset[str]:
        return frozenset(get_topic(cls) for cls in self.handles)

    def clear(self, conn: sa.Connection) -> None:
        """Empty the tables for a rebuild; a table lacking a declared column (made by an
        earlier version) is dropped and made again, so the rebuild fills the new schema."""
        outdated = [table for table in self.tables if missing_columns(conn, table)]
        for table in reversed(self.tables):
            if table in outdated:
                table.drop(conn)
            else:
                conn.execute(table.delete())
        for table in outdated:
            table.create(conn)


def missing_columns(conn: sa.Connection, table: sa.Table) -> list[str]:
    """The declared columns an existing table lacks (none when it does not exist yet).

    `metadata.create_all` makes missing tables but never alters one, so a read model
    whose schema grew needs `collections-es rebuild NAME` (docs/read-models.md)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name, schema=table.schema):
        return []
    present = {column["name"]: column["type"] for column in inspector.get_columns(table.name, schema=table.schema)}
    return [column.name for column in table.columns
            if column.name not in present or storage_changed(conn.dialect, column, present[column.name])]


def storage_changed(dialect: sa.Dialect, column: sa.Column[Any], reflected: Any) -> bool:
    """A column declared to be stored otherwise than it is, where that matters: a `rows.Sum`
    made as a 64-bit integer by an earlier version overflows (ADR 0060), so its table is
    outdated like one lacking a column, and `collections-es rebuild NAME` makes it anew."""
    if not getattr(column.type, "storage_checked", False):
        return False
    wanted = column.type.load_dialect_impl(dialect).compile(dialect=dialect)
    return wanted.split("(")[0] != reflected.compile(dialect=dialect).split("(")[0]


class Leadership:
    """Which projections this process may follow. On PostgreSQL a session-level
    advisory lock per projection (and schema) elects one follower at a time; the
    lock goes with the connection, so a crashed worker's turn passes at once."""

    def __init__(self, engine: sa.Engine, scope: str) -> None:
        self.engine = engine
        self.scope = scope
        self.elects = engine.dialect.name == "postgresql"
        self._conn: sa.Connection | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def key(self, name: str) -> int:
        digest = hashlib.sha256(f"collections-es:{self.scope}:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self, names: Iterable[str]) -> list[str]:
        """The names this process leads now (trying to take the ones it does not)."""
        names = list(names)
        if not self.elects:
            return names
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                    self._held.clear()
                else:
                    self._conn.execute(sa.text("SELECT 1"))  # still connected, so still holding
                for name in names:
                    if name not in self._held:
                        got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key(name)}).scalar()
                        self._conn.commit()
                        if got:
                            self._held.add(name)
            except sa.exc.DBAPIError:
                log.warning("lost the leadership connection; will try again", exc_info=True)
                self._drop()
                return []
            return [n for n in names if n in self._held]

    def held(self) -> set[str]:
        return set(self._held) if self.elects else set()

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                # The connection goes back to the pool, still open: let go explicitly.
                self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                self._conn.commit()
                self._conn.close()
            except sa.exc.DBAPIError:
                self._conn.invalidate()  # closes it for good, and the server ends its locks
        self._conn = None
        self._held.clear()


class ProjectionRunner:
    """Pulls notifications from the application's log into each projection."""

    def __init__(
        self,
        app: Application,
        engine: sa.Engine,
        projections: Iterable[Projection],
        *,
        batch_size: int = 500,
        scope: str = "",
    ):
        self.app = app
        self.engine = engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.leadership = Leadership(engine, scope)
        self._lock = threading.RLock()
        self._skips: dict[str, int] = {}  # stuck here: catch-ups to let pass before the next attempt
        self._backoff: dict[str, int] = {}
        self.failed_batches = 0  # batches that failed in this process (collections_projection_failures_total)
        metadata.create_all(engine)
        with engine.begin() as conn:
            known = set(conn.execute(sa.select(tracking.c.name)).scalars())
            for name in self.projections:
                if name not in known:
                    conn.execute(tracking.insert().values(name=name, position=0))
            self.outdated = self._outdated(conn)
        for name, columns in self.outdated.items():
            log.warning("read model %s was made by an earlier version (it lacks %s, or stores it otherwise): run `collections-es rebuild %s`",
                        name, ", ".join(columns), name)

    def _outdated(self, conn: sa.Connection) -> dict[str, list[str]]:
        """Projections whose existing tables lack declared columns → those columns (table.column)."""
        names = sorted({t.name for p in self.projections.values() for t in p.tables})
        present = {table: {c["name"]: c["type"] for c in columns} for (_, table), columns in
                   sa.inspect(conn).get_multi_columns(filter_names=names).items()}  # one query on PostgreSQL
        found: dict[str, list[str]] = {}
        for name, projection in self.projections.items():
            lacking = [f"{t.name}.{c.name}" for t in projection.tables for c in t.columns
                       if t.name in present and (c.name not in present[t.name]
                                                 or storage_changed(conn.dialect, c, present[t.name][c.name]))]
            if lacking:
                found[name] = lacking
        return found

    # -- positions ------------------------------------------------------------

    def positions(self, names: Iterable[str] | None = None) -> dict[str, int]:
        wanted = list(names or self.projections)
        with self.engine.execution_options(read_only=True).connect() as conn:
            rows = conn.execute(sa.select(tracking.c.name, tracking.c.position).where(tracking.c.name.in_(wanted)))
            found = {name: int(position) for name, position in rows}
        return {name: found[name] for name in wanted}

    def position(self, name: str) -> int:
        return self.positions([name])[name]

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def lag(self) -> dict[str, int]:
        head = self.head()
        return {name: max(0, head - position) for name, position in self.positions().items()}

    def stuck(self, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The projections stuck on an event they failed to apply (whichever process tried),
        with that event's position, type, aggregate, the error and how often it failed."""
        wanted = list(names or self.projections)
        f = failures.c
        query = (
            sa.select(f.name, f.position, f.event_type, f.aggregate_id, f.error, f.attempts, f.failed_at)
            .join(tracking, tracking.c.name == f.name)
            .where(f.name.in_(wanted), f.position > tracking.c.position)
        )
        with self.engine.execution_options(read_only=True).connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {row["name"]: {k: v for k, v in row.items() if k != "name"} | {"failed_at": row["failed_at"].replace(tzinfo=UTC)}
                for row in rows}

    # -- applying -------------------------------------------------------------

    def run_once(self, name: str) -> int:
        """Apply one batch to one projection; returns how many notifications it consumed."""
        start = self.position(name)
        notifications = self._read(start, self.batch_size)
        if not notifications:
            return 0
        return self._apply_isolated(name, start, notifications, None)[0]

    def catch_up(self, names: Iterable[str] | None = None, *, batch_size: int | None = None,
                 progress: Progress | None = None, paced: bool = False) -> int:
        """Run every (or the named) projection until it reaches the head of the log.

        Projections at the same position share each batch's read and decoding. A projection
        stuck on an event is tried again each time, unless `paced` (the follower's loop and
        reads): then it waits 1, 2, 4 … MAX_RETRY_SKIPS paced catch-ups between attempts.
        Returns the number of notifications read.
        """
        wanted = list(names or self.projections)
        size = batch_size or self.batch_size
        total = 0
        with self._lock:
            head = self.head()
            waiting = {n for n in wanted if paced and self._wait_turn(n)}  # stuck: not tried this time
            while True:
                positions = self.positions(wanted)
                behind = {n: p for n, p in positions.items() if p < head and n not in waiting}
                if not behind:
                    return total
                start = min(behind.values())
                group = [n for n, p in behind.items() if p == start]
                notifications = self._read(start, size)
                if not notifications:
                    return total
                topics = frozenset().union(*(self.projections[n].topics() for n in group))
                try:
                    decoded: list[tuple[Any, int, str]] | None = self._decode(notifications, topics)
                except Exception:  # an event that cannot be read: each projection finds its own way
                    decoded = None
                for name in group:
                    if self._apply_isolated(name, start, notifications, decoded)[1]:
                        waiting.add(name)  # stuck (recorded); the others go on
                total += len(notifications)
                if progress is not None:
                    progress(notifications[-1].id, head)

    def follow(self, stop: threading.Event, names: Iterable[str] | None = None, *, poll: float = 0.5,
               beat: Callable[[list[str]], object] | None = None) -> None:
        """Keep the projections this process is elected for at the head of the log until `stop`.
        `beat` is told after each round which projections this process leads (its heartbeat)."""
        wanted = list(names or self.projections)
        try:
            while not stop.is_set():
                mine: list[str] = []
                try:
                    mine = self.leadership.acquire(wanted)
                    if mine:
                        self.catch_up(mine, paced=True)
                except Exception:  # a transient database error: log and try again
                    log.exception("projection catch-up failed; retrying")
                if beat is not None:
                    beat(mine)
                stop.wait(poll)
        finally:
            self.leadership.release()

    def wait_until_current(self, names: Iterable[str], *, apply: bool, timeout: float) -> int:
        """Read-your-writes: bring (or, when another process applies, wait for) the named
        projections up to the log's head as of now. Returns the lag left (0 when current)."""
        wanted = list(names)
        target = self.head()
        if apply:
            try:
                self.catch_up(wanted, paced=True)
            except Exception:  # a read is still served, marked stale, and the failure logged
                log.exception("projection catch-up failed during a read")
                return max(0, target - min(self.positions(wanted).values()))
        step = 0.02
        for attempt in range(max(1, int(timeout / step))):  # counted, not timed: clocks may be frozen
            lag = max(0, target - min(self.positions(wanted).values()))
            if lag == 0:
                return 0
            if attempt == 0 and self.stuck(wanted):  # waiting would not help: answer stale at once
                return lag
            time.sleep(step)
        return max(0, target - min(self.positions(wanted).values()))

    def rebuild(
        self, names: str | Iterable[str] | None = None, *, batch_size: int | None = None, progress: Progress | None = None
    ) -> int:
        """Empty the named (default: all) projections' tables and replay the whole log
        into them, together, so each batch is read and decoded once for all of them."""
        wanted = [names] if isinstance(names, str) else list(names or self.projections)
        with self._lock:
            with self.engine.begin() as conn:
                for name in wanted:
                    conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name).with_for_update()).scalar_one()
                    self.projections[name].clear(conn)
                    conn.execute(tracking.update().where(tracking.c.name == name).values(position=0))
                    conn.execute(failures.delete().where(failures.c.name == name))  # a fresh start
                    self._skips.pop(name, None)
                    self._backoff.pop(name, None)
                    self.outdated.pop(name, None)
            return self.catch_up(wanted, batch_size=batch_size, progress=progress)

    def close(self) -> None:
        self.leadership.release()

    # -- internals --------------------------------------------------------------

    def _read(self, start: int, limit: int) -> list[Notification]:
        return self.app.recorder.select_notifications(start=start, limit=limit, inclusive_of_start=False)

    def _decode(self, notifications: list[Notification], topics: frozenset[str]) -> list[tuple[Any, int, str]]:
        to_event = self.app.mapper.to_domain_event
        return [(to_event(n), n.id, n.topic) for n in notifications if n.topic in topics]

    def _wait_turn(self, name: str) -> bool:
        """Whether a projection stuck here lets this catch-up pass (counting down its pause)."""
        left = self._skips.get(name, 0)
        if left <= 0:
            return False
        self._skips[name] = left - 1
        return True

    def _apply_isolated(
        self, name: str, start: int, notifications: list[Notification], decoded: list[tuple[Any, int, str]] | None
    ) -> tuple[int, bool]:
        """`_apply`, with a failing batch bisected down to the event at fault: what comes before
        it is applied, and it is recorded as the projection's failure. Returns how many
        notifications this call applied (0 when another worker applied them first) and
        whether the projection is now stuck."""
        topics = self.projections[name].topics()
        if decoded is not None:
            try:
                applied = self._apply(name, start, notifications, decoded)
                self._recovered(name)
                return (len(notifications) if applied else 0), False
            except Exception:  # noqa: BLE001 - found and reported below
                log.warning("projection %s: a batch after position %d failed; finding the event at fault", name, start)
        position, rest, done = start, list(notifications), 0
        while rest:
            size = len(rest)
            while True:
                chunk = rest[:size]
                try:
                    if not self._apply(name, position, chunk, self._decode(chunk, topics)):
                        return done, False  # another worker moved it: its turn
                    break
                except Exception as error:  # noqa: BLE001 - recorded with its position
                    if size == 1:
                        self._record_failure(name, chunk[0], error)
                        return done, True
                    size //= 2
            position, rest, done = chunk[-1].id, rest[size:], done + size
        self._recovered(name)
        return done, False

    def _recovered(self, name: str) -> None:
        if self._backoff.pop(name, None) is not None:
            self._skips.pop(name, None)
            log.warning("projection %s is moving again", name)

    def _record_failure(self, name: str, notification: Notification, error: Exception) -> None:
        """Record (or count again) the failure; the projection stays before that event."""
        self.failed_batches += 1
        self._backoff[name] = min(MAX_RETRY_SKIPS, self._backoff.get(name, 0) * 2 or 1)
        self._skips[name] = self._backoff[name]
        text = error_text(error)
        event_type = notification.topic.rsplit(":", 1)[-1]
        log.error("projection %s is stuck at position %d (%s of %s): %s",
                  name, notification.id, event_type, notification.originator_id, text)
        f = failures.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(f.position, f.attempts).where(f.name == name).with_for_update()).first()
            attempts = row.attempts + 1 if row is not None and row.position == notification.id else 1
            values = {"position": notification.id, "event_type": event_type[:200],
                      "aggregate_id": str(notification.originator_id), "error": text, "attempts": attempts,
                      "failed_at": datetime.now(UTC).replace(tzinfo=None)}
            if row is None:
                conn.execute(failures.insert().values(name=name, **values))
            else:
                conn.execute(failures.update().where(f.name == name).values(**values))

    def _apply(self, name: str, start: int, notifications: list[Notification], decoded: list[tuple[Any, int, str]]) -> bool:
        """One batch into one projection, in one transaction with its position.

        Reads the projection needs (`prepare`) happen before the transaction, so it
        never waits on the event store while holding a database write lock. The
        transaction first locks this projection's tracking row (PostgreSQL; SQLite's
        BEGIN IMMEDIATE already serialises writers), so a second worker waits, then
        sees the position moved and applies nothing.
        """
        projection = self.projections[name]
        topics = projection.topics()
        items = [(event, position) for event, position, topic in decoded if topic in topics]
        prepared = projection.prepare([event for event, _ in items])
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(tracking.c.position).where(tracking.c.name == name).with_for_update()
            ).scalar_one()
            if current != start:
                return False  # another worker applied this batch first
            if items:
                projection.apply_batch(conn, items, prepared)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=notifications[-1].id))
        return True


def error_text(error: BaseException) -> str:
    """What failed, for the failures table and `/readyz`: the error's type and the first line of
    its message (a database error's own, never the statement and its parameters), redacted of
    contact details, at most 500 characters."""
    from collections_es.application.pii import Redactor

    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return (Redactor().text(text) or text)[:500]
