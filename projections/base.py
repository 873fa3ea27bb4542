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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
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
    #: Rebuilt in shadow tables and swapped in when caught up (ADR 0065). False for the
    #: projections whose rows are also a record of work done (messages and deliveries sent):
    #: their rebuild keeps those rows and adds what is missing, in place.
    shadowed: bool = True

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
        """Replay the whole log into the named (default: all) projections, together, so each
        batch is read and decoded once for all of them. Views are built in shadow tables while
        the live ones keep answering (and following the log), then swapped in (ADR 0065);
        the outbox and webhook deliveries are rebuilt in place. Returns notifications read."""
        wanted = [names] if isinstance(names, str) else list(names or self.projections)
        shadowed = [name for name in wanted if self.projections[name].shadowed]
        in_place = [name for name in wanted if name not in shadowed]
        done = self._rebuild_in_shadow(shadowed, batch_size or self.batch_size, progress) if shadowed else 0
        if in_place:
            done = max(done, self._rebuild_in_place(in_place, batch_size=batch_size, progress=progress))
        return done

    def _rebuild_in_place(self, wanted: list[str], *, batch_size: int | None, progress: Progress | None) -> int:
        """Empty the projections' tables and catch them up from the start."""
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

    def _rebuild_in_shadow(self, names: list[str], size: int, progress: Progress | None) -> int:
        """Build the projections in a shadow copy of their tables from position 0, following the
        log until within one batch of its head; then, in one transaction holding their tracking
        rows, apply the rest, swap the shadow tables in and set their positions."""
        projections = [self.projections[name] for name in names]
        tables = [table for p in projections for table in p.tables]
        total = 0
        with self.engine.connect() as conn:
            shadow = Shadow(conn, tables)
            try:
                shadow.create()
                position = 0
                while True:
                    head = self.head()
                    if head - position <= size:
                        break
                    while position < head:
                        read = self._shadow_batch(shadow, projections, position, size, in_swap=False)
                        if not read:
                            break
                        total += len(read)
                        position = read[-1].id
                        if progress is not None:
                            progress(position, head)
                shadow.settle()
                with shadow.swapping():
                    for name in names:
                        conn.execute(sa.select(tracking.c.position).where(tracking.c.name == name).with_for_update()).scalar_one()
                    head = self.head()
                    while position < head:
                        read = self._shadow_batch(shadow, projections, position, size, in_swap=True)
                        if not read:
                            break
                        total += len(read)
                        position = read[-1].id
                    shadow.swap()
                    conn.execute(tracking.update().where(tracking.c.name.in_(names)).values(position=position))
                    conn.execute(failures.delete().where(failures.c.name.in_(names)))  # a fresh start (ADR 0060)
                if progress is not None:
                    progress(position, position)
            finally:
                shadow.drop()
        for name in names:
            self._skips.pop(name, None)
            self._backoff.pop(name, None)
            self.outdated.pop(name, None)
        return total

    def _shadow_batch(self, shadow: Shadow, projections: list[Projection], start: int, size: int, *, in_swap: bool) -> list[Notification]:
        notifications = self._read(start, size)
        if not notifications:
            return notifications
        topics = frozenset().union(*(p.topics() for p in projections))
        decoded = self._decode(notifications, topics)
        work = []
        for projection in projections:
            mine = projection.topics()
            items = [(event, position) for event, position, topic in decoded if topic in mine]
            work.append((projection, items, projection.prepare([event for event, _ in items]) if items else None))
        with shadow.writing(in_swap):
            for projection, items, prepared in work:
                if items:
                    projection.apply_batch(shadow.conn, items, prepared)
        return notifications

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


class Shadow:
    """The shadow copy of some read-model tables that a rebuild fills (ADR 0065).

    PostgreSQL: the same tables in the schema `<live schema>__rebuild`; the swap drops each
    live table and moves the shadow one into the live schema (indexes and sequences move
    with it), in one transaction. SQLite: the same tables in a file attached beside the
    database (`<file>-rebuild`, written without fsync: it is thrown away on a crash); the swap
    replaces each live table's rows with the shadow's in one transaction. Either way a reader
    sees the old view or the new one, never a mix, and the shadow's statements are the
    projections' own, pointed elsewhere with SQLAlchemy's `schema_translate_map`.
    """

    ALIAS = "rebuild"

    def __init__(self, conn: sa.Connection, tables: Sequence[sa.Table]) -> None:
        self.conn = conn
        self.tables = list(tables)
        self.postgres = conn.dialect.name == "postgresql"
        if self.postgres:
            self.live = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            conn.commit()
            self.name = f"{self.live}__rebuild"[:63]
        else:
            self.live = "main"
            self.name = self.ALIAS
            database = conn.engine.url.database
            assert database
            self.path = f"{database}-rebuild"

    def _translated(self, on: bool) -> None:
        self.conn.execution_options(schema_translate_map={None: self.name} if on else {})

    def create(self) -> None:
        if self.postgres:
            with self.conn.begin():
                self.conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
                self.conn.execute(sa.text(f'CREATE SCHEMA "{self.name}"'))
        else:
            raw = self.conn.connection.driver_connection
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.path + suffix).unlink(missing_ok=True)
            raw.execute(f"ATTACH DATABASE ? AS {self.ALIAS}", (self.path,))
            raw.execute(f"PRAGMA {self.ALIAS}.journal_mode=OFF")
            raw.execute(f"PRAGMA {self.ALIAS}.synchronous=OFF")
        self._translated(True)
        try:
            with self.conn.begin():
                for table in self.tables:
                    table.create(self.conn)
        finally:
            self._translated(False)
        if self.postgres:  # no WAL for rows rewritten batch after batch; logged once before the swap
            with self.conn.begin():
                for table in self.tables:
                    self.conn.execute(sa.text(f'ALTER TABLE "{self.name}"."{table.name}" SET UNLOGGED'))

    def settle(self) -> None:
        """Before the swap (PostgreSQL): write the shadow tables to the WAL once, so what is
        swapped in is as durable as the rest of the database."""
        if self.postgres:
            with self.conn.begin():
                for table in self.tables:
                    self.conn.execute(sa.text(f'ALTER TABLE "{self.name}"."{table.name}" SET LOGGED'))

    @contextmanager
    def writing(self, in_swap: bool) -> Iterator[None]:
        """A batch into the shadow tables: its own transaction (deferred on SQLite, so the
        live database's write lock is not taken), or a part of the swap's."""
        self._translated(True)
        try:
            if in_swap:
                yield
            else:
                self.conn.execution_options(deferred=True)
                try:
                    with self.conn.begin():
                        yield
                finally:
                    self.conn.execution_options(deferred=False)
        finally:
            self._translated(False)

    @contextmanager
    def swapping(self) -> Iterator[None]:
        """The swap's transaction (on SQLite it takes the write lock: BEGIN IMMEDIATE)."""
        with self.conn.begin():
            yield

    def swap(self) -> None:
        conn = self.conn
        for table in reversed(self.tables):
            if self.postgres:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{self.live}"."{table.name}"'))
            elif missing_columns(conn, table):  # made by an earlier version: made again
                table.drop(conn)
        for table in self.tables:
            if self.postgres:
                conn.execute(sa.text(f'ALTER TABLE "{self.name}"."{table.name}" SET SCHEMA "{self.live}"'))
                continue
            table.create(conn, checkfirst=True)
            conn.execute(table.delete())
            columns = ", ".join(f'"{c.name}"' for c in table.columns)
            conn.exec_driver_sql(
                f'INSERT INTO main."{table.name}" ({columns}) SELECT {columns} FROM {self.ALIAS}."{table.name}"'
            )

    def drop(self) -> None:
        """Throw the shadow away (after the swap it holds nothing of use; on failure, a half-built view)."""
        if self.conn.in_transaction():
            self.conn.rollback()
        self._translated(False)
        if self.postgres:
            with self.conn.begin():
                self.conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
            return
        try:
            self.conn.connection.driver_connection.execute(f"DETACH DATABASE {self.ALIAS}")
        except Exception:  # noqa: BLE001 - not attached (create failed early)
            pass
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(self.path + suffix).unlink(missing_ok=True)
