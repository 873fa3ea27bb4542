"""Leader election for the processes of which one must act at a time (the scheduler; ADR 0062).

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own
(outside the pools, so it never goes back to a pool still holding the lock). The lock
lives as long as that connection: a leader killed with SIGKILL closes its socket, the
server ends the session and the lock with it, and a standby polling `pg_try_advisory_lock`
on its own connection takes over at its next poll. The leader checks each poll that its
connection still answers; when it does not, it stops leading at once (it may have lost
the lock) and tries again as a standby.

On SQLite there is no election: it is the one-process embedded default, and `hold()` is
always true (a second scheduler on one SQLite file would repeat work, never events: every
firing carries its timer's idempotency key).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from .persistence import Database

log = logging.getLogger(__name__)


class Leadership(Protocol):
    elects: bool
    connected: bool  # the last check reached the database (a standby that cannot is not waiting, it is cut off)

    def hold(self) -> bool:
        """True while this process leads: take the lock when free, check it is still ours when held."""

    def release(self) -> None:
        """Stop leading (the lock goes at once)."""


def lock_key(scope: str, name: str) -> int:
    """The advisory lock's 64-bit key for `name` in `scope` (the schema: tests share one database)."""
    digest = hashlib.sha256(f"collections-es:{scope}:leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class NoElection:
    """SQLite: the embedded default runs one of each, so this process always leads."""

    elects = False
    connected = True

    def hold(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _lock_engine(database: Database) -> sa.Engine:
    """Connections of their own (not pooled: closing one ends its session and its locks)."""
    connect_args: dict[str, Any] = {
        "connect_timeout": 5,
        # A leader cut off from the server notices within seconds on its next check.
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
    }
    if database.schema:
        connect_args["options"] = f"-csearch_path={database.schema}"
    return sa.create_engine(
        database.url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=connect_args, hide_parameters=True
    )


@contextmanager
def creating_tables(database: Database) -> Iterator[None]:
    """Processes starting together on an empty PostgreSQL database take turns at creating its
    schema and tables (each start-up checks before it creates, so the later ones create nothing);
    without the turns two of them can collide on the same CREATE TABLE. Nothing on SQLite."""
    if not database.is_postgres:
        yield
        return
    engine = _lock_engine(database)
    key = lock_key(database.schema or "", "create-tables")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated connection."""

    elects = True

    def __init__(self, database: Database, name: str) -> None:
        self.name = name
        self.key = lock_key(database.schema or "", name)
        self._engine = _lock_engine(database)
        self._conn: sa.Connection | None = None
        self._held = False
        self.connected = False

    def hold(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self._held = False
            if self._held:
                self._conn.execute(sa.text("SELECT 1"))  # still connected, so still holding
            else:
                self._held = bool(self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            self.connected = True
        except sa.exc.DBAPIError:
            if self.connected or self._held:
                log.warning("the %s lock's connection failed; leading no more, trying again", self.name, exc_info=True)
            self._drop()
            self.connected = False
        return self._held

    def release(self) -> None:
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            try:
                conn.close()  # not pooled: closing ends the session, and its locks with it
            except sa.exc.DBAPIError:
                conn.invalidate()


def leadership(database: Database, name: str) -> Leadership:
    """An advisory lock on PostgreSQL; no election on SQLite."""
    return AdvisoryLock(database, name) if database.is_postgres else NoElection()
