"""The worklist at 100,000 receivables: `items_for` and the routes that serve it (ADR 0048).

    .venv/bin/python bench/worklist.py                           # SQLite, 100,000 receivables
    .venv/bin/python bench/worklist.py --db postgres
    .venv/bin/python bench/worklist.py --store /tmp/wl.db        # keep the store; later runs reuse it

Records `--size` receivables with `bench/aging.py`'s generator (as `console_pages.py` does),
catches up the worklist, sets the clock after every change (every unpaid receivable past
due: the most open items), then times `--requests` calls each, after two warm-up calls:

- `projections.worklist.items_for` for collector-1 (the first 51 items: the console's first
  page asks for one more than it shows) and for everyone;
- `GET /worklist` (100 items) as collector-1 and as a supervisor (everyone);
- `/console/worklist` as collector-1 and as a supervisor (everyone's first page of 50).

and prints p50 and p95 in ms against the goal (150 ms at the 95th percentile, issue 12).
On PostgreSQL `rm_worklist` is vacuumed and analysed first, as autovacuum would be a minute
after the bulk load (without it the planner has no statistics and no visibility map).

`--store` (SQLite file) or `--schema` (PostgreSQL) keeps the recorded store, so the same
data can be measured by another checkout of the code (e.g. the version before ADR 0048:
`PYTHONPATH=<that checkout>/src:<that checkout> python bench/worklist.py --store ...`); the
script calls `items_for` with `limit=` when the code has it, else cuts the full list.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The code measured: PYTHONPATH's checkout when given (ahead of bench/, whose projections.py
# would shadow the package), else this one.
for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.environ.get("PYTHONPATH")
                      else [str(Path(__file__).resolve().parents[1])]):
    sys.path.insert(0, entry)

import _common as c  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from projections import worklist  # noqa: E402

GOAL_MS = 150.0
_spec = importlib.util.spec_from_file_location("bench_aging", Path(__file__).resolve().parent / "aging.py")
assert _spec and _spec.loader
bench_aging = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_aging)


def percentiles(fn: Callable[[], Any], requests: int) -> tuple[float, float]:
    """(p50, p95) in ms of `requests` calls of fn(), after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


@contextmanager
def store(args: argparse.Namespace) -> Iterator[str]:
    if args.db == "sqlite":
        if args.store:
            yield f"sqlite:///{Path(args.store).resolve()}"
            return
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/worklist.db"
    elif args.schema:
        yield f"{args.pg_url}?schema={args.schema}"
    else:
        with c.pg_schema(args.pg_url, prefix="bench_worklist") as schema:
            yield f"{args.pg_url}?schema={schema}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--store", help="SQLite file to keep (and reuse when it holds a store)")
    parser.add_argument("--schema", help="PostgreSQL schema to keep (and reuse when it holds a store)")
    parser.add_argument("--size", type=int, default=100_000, help="receivables")
    parser.add_argument("--span-days", type=int, default=365, help="days over which invoices are issued")
    parser.add_argument("--requests", type=int, default=100, help="calls per figure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-http", action="store_true", help="time items_for only")
    args = parser.parse_args()
    if args.db == "postgres" and (reason := c.postgres_reason(args.pg_url)):
        print(f"PostgreSQL unavailable: {reason}")
        return 1
    limited = "limit" in inspect.signature(worklist.items_for).parameters
    print(f"worklist benchmark on {args.db}: {c.machine()}; {args.requests} calls per figure; "
          f"code: {Path(worklist.__file__).resolve().parents[1]} ({'SQL order and limit' if limited else 'scored in Python'})")
    with store(args) as url:
        clock = FixedClock(bench_aging.START)
        services = build(Settings(DATABASE_URL=url, COLLECTIONS_RATE_LIMIT_BURST=0), clock=clock)
        try:
            end = bench_aging.START.date() + timedelta(days=args.span_days + 120)
            if services.projections.head() < args.size:  # a new store (the policy adopted at start aside)
                started = time.perf_counter()
                events, end = bench_aging.record(services, args.size, args.span_days, args.seed)
                print(f"{args.size:,} receivables: {events:,} events recorded in {time.perf_counter() - started:.1f} s")
            else:
                print(f"reusing the store: {services.projections.head():,} events")
            started = time.perf_counter()
            if limited and services.projections.outdated.get("worklist"):
                services.projections.rebuild("worklist")
                print(f"worklist rebuilt (its table lacked the new columns) in {time.perf_counter() - started:.1f} s")
            else:
                services.projections.catch_up(["worklist", "contacts_log", "receivables"])
                print(f"read models caught up in {time.perf_counter() - started:.1f} s")
            if args.db == "postgres":  # what autovacuum does a minute after a bulk load: statistics, visibility map
                with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("VACUUM (ANALYZE) rm_worklist"))
            clock.at = datetime(end.year, end.month, end.day, 2, tzinfo=UTC)  # after every change: the most open items
            measure(services, args, limited)
        finally:
            services.close()
    return 0


def measure(services: Any, args: argparse.Namespace, limited: bool) -> None:
    now = services.clock.now()
    policy = services.app.policy()

    def items(collector: str | None, limit: int) -> list[dict[str, Any]]:
        with services.snapshot() as conn:
            if limited:
                return worklist.items_for(conn, collector=collector, now=now, policy=policy, limit=limit)
            return worklist.items_for(conn, collector=collector, now=now, policy=policy)[:limit]

    with services.engine.connect() as conn:
        w = worklist.worklist.c
        counts = sa.select(w.collector, sa.func.count()).where(w.open.is_(True)).group_by(w.collector)
        open_rows = dict(conn.execute(counts).all())
    print(f"as of {now:%Y-%m-%d}: open items: collector-1 {open_rows.get('collector-1', 0):,}, "
          f"everyone {sum(open_rows.values()):,}")
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("items_for collector-1, first 51", lambda: items("collector-1", 51)),
        ("items_for everyone, first 51", lambda: items(None, 51)),
    ]
    if not args.skip_http:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

            from collections_es.api.app import create_app
        app = create_app(services)
        tokens = {role: services.keys.add(f"{role}-1", role, now) for role in ("collector", "supervisor")}

        def signed_in(role: str) -> Any:
            client = TestClient(app, follow_redirects=False)
            page = client.get("/console/login")
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            assert client.post("/console/login", data={"token": tokens[role], "csrf": csrf}).status_code == 303
            return client

        def ok(response: Any) -> Any:
            assert response.status_code == 200, (response.status_code, response.text[:300])
            return response

        collector, supervisor = signed_in("collector"), signed_in("supervisor")
        api_collector = TestClient(app, headers={"Authorization": f"Bearer {tokens['collector']}"})
        api_supervisor = TestClient(app, headers={"Authorization": f"Bearer {tokens['supervisor']}"})
        figures += [
            ("GET /worklist collector-1 (100)", lambda: ok(api_collector.get("/worklist"))),
            ("GET /worklist supervisor, everyone (100)", lambda: ok(api_supervisor.get("/worklist"))),
            ("/console/worklist collector-1", lambda: ok(collector.get("/console/worklist"))),
            ("/console/worklist supervisor, everyone", lambda: ok(supervisor.get("/console/worklist"))),
        ]
    print(f"\n  {'figure':<42} {'p50 ms':>8} {'p95 ms':>8}  goal p95 <= {GOAL_MS:.0f} ms")
    for name, call in figures:
        p50, p95 = percentiles(call, args.requests)
        print(f"  {name:<42} {p50:>8.1f} {p95:>8.1f}  {'PASS' if p95 <= GOAL_MS else 'FAIL'}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
