"""Shared fixtures: real SQLite files and the real local PostgreSQL.

PostgreSQL tests use the database named by COLLECTIONS_TEST_DATABASE_URL
(scripts/test.sh creates it) and a fresh schema per test. Under CI=true they
fail rather than skip when PostgreSQL is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from collections_es.application.clock import FixedClock
from collections_es.bootstrap import Services, build
from collections_es.config import Settings

PG_URL = os.environ.get("COLLECTIONS_TEST_DATABASE_URL", "postgresql://collections@127.0.0.1:5432/collections_test")
IN_CI = os.environ.get("CI", "").lower() == "true"

_pg_checked: dict[str, str | None] = {}


def postgres_unavailable() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    if "reason" not in _pg_checked:
        try:
            engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_checked["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means unavailable
            _pg_checked["reason"] = f"PostgreSQL at {PG_URL} unavailable: {type(exc).__name__}: {exc}"
    return _pg_checked["reason"]


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(reason)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL DATABASE_URL with a schema of its own, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/collections.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """Each test using this runs on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/collections.db"
    return request.getfixturevalue("pg_url")


START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


# The suite sends many requests with one key, and many wrong tokens, in no time: rate limits
# that never bite here; tests/integration/test_rate_limit.py sets low ones (ADR 0031).
UNLIMITED = {"COLLECTIONS_RATE_LIMIT_BURST": 1_000_000, "COLLECTIONS_AUTH_FAILURE_BURST": 1_000_000}


def make_services(database_url: str, clock=None, **settings) -> Services:
    return build(Settings(DATABASE_URL=database_url, **{**UNLIMITED, **settings}), clock=clock)


@pytest.fixture
def services(database_url, clock) -> Iterator[Services]:
    svc = make_services(database_url, clock)
    yield svc
    svc.close()
