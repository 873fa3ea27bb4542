"""Helpers shared by the benchmark scripts (not a test module; nothing here is imported by src/)."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_PG_URL = os.environ.get(
    "COLLECTIONS_BENCH_DATABASE_URL",
    os.environ.get("COLLECTIONS_TEST_DATABASE_URL", "postgresql://collections@127.0.0.1:5432/collections_test"),
)

TODAY = datetime.now(UTC).date()
PAID_ON = (TODAY - timedelta(days=2)).isoformat()  # never "in the future" in any customer time zone
ISSUED_ON = (TODAY - timedelta(days=10)).isoformat()
DUE_ON = (TODAY + timedelta(days=60)).isoformat()
LARGE_AMOUNT = "900000000.00"  # payments of 0.01 never settle it


def sa_url(url: str) -> str:
    """A plain postgresql:// URL as SQLAlchemy's psycopg 3 URL."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def postgres_reason(url: str = DEFAULT_PG_URL) -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(sa_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unavailable
        return f"{type(exc).__name__}: {exc}"


@contextmanager
def pg_schema(url: str = DEFAULT_PG_URL, prefix: str = "bench") -> Iterator[str]:
    """A throwaway schema name (created), dropped with CASCADE afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(sa_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize(latencies: list[float], elapsed: float) -> dict[str, float]:
    lat = sorted(latencies)
    return {
        "n": len(lat),
        "rps": len(lat) / elapsed if elapsed > 0 else float("nan"),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "mean_ms": (statistics.fmean(lat) * 1000) if lat else float("nan"),
    }


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def today() -> date:
    return TODAY
