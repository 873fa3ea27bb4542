"""Persistence wiring: one DATABASE_URL chooses SQLite (embedded) or PostgreSQL.

The event store is eventsourcing's core recorder for that database (ADR 0001);
read models, API keys and the like are SQLAlchemy tables in the same database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import JSONTranscoder, Transcoding, TranscodingNotRegisteredError
from sqlalchemy.engine import URL, make_url

from ..domain.errors import CollectionsError
from .cipher import cipher_env, make_cipher, seal_engine


class DatabaseUrlError(CollectionsError):
    pass


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class MROJSONTranscoder(JSONTranscoder):
    """Looks a value's type up along its MRO, so freezegun's FakeDatetime and
    FakeDate encode as datetime and date (checked with freezegun 1.5)."""

    def _encode_obj(self, o: Any) -> dict[str, Any]:
        for klass in type(o).__mro__:
            transcoding = self.types.get(klass)
            if transcoding is not None:
                return {"_type_": transcoding.name, "_data_": transcoding.encode(o)}
        raise TranscodingNotRegisteredError(f"Object of type {type(o)} is not serializable")


class _NoResultRows(logging.Filter):
    """SQLAlchemy's engine logger at DEBUG writes every result row, and rows may hold
    contact details (decrypted): those records are dropped; statements still log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and "Row %r" in record.msg)


def _keep_rows_out_of_logs() -> None:
    engine_log = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, _NoResultRows) for f in engine_log.filters):
        engine_log.addFilter(_NoResultRows())


#: PostgreSQL connections one process may open, both pools together (COLLECTIONS_DB_POOL_SIZE).
DEFAULT_POOL_SIZE = 20


def store_pool(total: int) -> int:
    """The event store's share of a process's connections (the read models' engine has the rest)."""
    return max(1, (total + 1) // 2)


@dataclass(frozen=True)
class Database:
    """A parsed DATABASE_URL."""

    url: URL
    schema: str | None

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @classmethod
    def parse(cls, database_url: str) -> Database:
        try:
            url = make_url(database_url)
        except Exception:  # sqlalchemy raises ArgumentError with the URL in it
            raise DatabaseUrlError("DATABASE_URL is not a database URL") from None
        backend = url.get_backend_name()
        schema = url.query.get("schema")
        if isinstance(schema, tuple):
            schema = schema[-1]
        url = url.difference_update_query(["schema"])
        if backend == "sqlite":
            if not url.database or url.database == ":memory:":
                raise DatabaseUrlError("DATABASE_URL for SQLite must name a file (sqlite:///path/to/file.db)")
            return cls(url.set(drivername="sqlite"), None)
        if backend == "postgresql":
            if not url.database:
                raise DatabaseUrlError("DATABASE_URL for PostgreSQL must name a database")
            return cls(url.set(drivername="postgresql+psycopg"), schema or None)
        raise DatabaseUrlError(f"unsupported database '{backend}': use sqlite:/// or postgresql://")

    def event_store_env(
        self, cipher_key: str | None = None, pool_size: int = DEFAULT_POOL_SIZE, aggregate_cache: int = 0
    ) -> dict[str, str]:
        """eventsourcing settings for this database (events encrypted when a key is given;
        the event store's share of `pool_size` connections; `aggregate_cache` aggregates
        kept in memory and brought up to date with one query when loaded, ADR 0064)."""
        env = self._store_env(store_pool(pool_size)) | cipher_env(cipher_key)
        if aggregate_cache > 0:
            env |= {"AGGREGATE_CACHE_MAXSIZE": str(aggregate_cache), "AGGREGATE_CACHE_FASTFORWARD": "y"}
        return env

    def _store_env(self, pool: int) -> dict[str, str]:
        if self.is_sqlite:
            assert self.url.database
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.url.database,
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": "y",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.url.database or "",
            "POSTGRES_HOST": self.url.host or "127.0.0.1",
            "POSTGRES_PORT": str(self.url.port or 5432),
            "POSTGRES_USER": self.url.username or "postgres",
            "POSTGRES_PASSWORD": self.url.password or "",
            "POSTGRES_SCHEMA": self.schema or "",
            # min_size = max_size: the pool opens its connections once and keeps them (ADR 0067).
            "POSTGRES_POOL_SIZE": str(pool),
            "POSTGRES_MAX_OVERFLOW": "0",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            # No pre-ping: a dropped connection raises OperationalError, which eventsourcing
            # retries on a fresh connection (ADR 0064).
            "POSTGRES_PRE_PING": "n",
            "CREATE_TABLE": "y",
        }

    def make_engine(self, cipher_key: str | None = None, pool_size: int = DEFAULT_POOL_SIZE) -> sa.Engine:
        """The SQLAlchemy engine for read models and service tables (on PostgreSQL, the rest
        of `pool_size` connections); with a key, their `SealedText` columns are encrypted
        (ADR 0030). Bound parameters and result rows never appear in SQLAlchemy's logs or
        error messages (they may be contact details)."""
        _keep_rows_out_of_logs()
        engine = self._engine(pool_size - store_pool(pool_size))
        return seal_engine(engine, make_cipher(cipher_key) if cipher_key else None)

    def _engine(self, pool: int) -> sa.Engine:
        if self.is_sqlite:
            engine = sa.create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
            )

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                # Writers take the write lock up front: a deferred transaction that
                # later writes can fail at once with SQLITE_BUSY instead of waiting.
                # Readers (`read_only` execution option) don't block anyone in WAL mode.
                # `deferred`: a rebuild writing only to its attached shadow file (ADR 0065).
                options = conn.get_execution_options()
                if options.get("read_only") or options.get("deferred"):
                    conn.exec_driver_sql("BEGIN")
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        connect_args: dict[str, Any] = {"connect_timeout": 5}
        if self.schema:
            connect_args["options"] = f"-csearch_path={self.schema}"
        # No pre-ping (a round trip per checkout): a connection found dead fails its request
        # once, and SQLAlchemy then replaces every connection of the pool (ADR 0064).
        engine = sa.create_engine(
            self.url, pool_size=pool, max_overflow=0, pool_timeout=30, pool_pre_ping=False,
            connect_args=connect_args, hide_parameters=True,
        )
        if self.schema:
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        return engine
