"""The console's pages at 100,000 receivables: server time of the worklist, receivable and aging pages.

    .venv/bin/python bench/console_pages.py                      # SQLite, 100,000 receivables
    .venv/bin/python bench/console_pages.py --size 10000 --requests 100
    .venv/bin/python bench/console_pages.py --db postgres

Records `--size` receivables with `bench/aging.py`'s generator (five customers, four
collectors, CNY/USD/JPY, disputes, reassignments, payments: about 1.8 events each), catches
up the read models the pages read (worklist, contacts log, receivables list), then sends
`--requests` requests per page through FastAPI's TestClient over the real app with a signed-in
session (no network; the figure is the server's time plus the in-process client's), and
prints p50 and p95 in ms against the goal (150 ms at the 95th percentile, issue 12):

- `/console/worklist` as a collector (their own items, first page of 50);
- `/console/worklist` as a supervisor (everyone's, first page);
- `/console/receivables/{id}` for receivables drawn at random (seeded);
- `/console/reports/aging` as a supervisor, by currency, customer and collector (today);
- and the API routes serving the same data (`GET /worklist`, `GET /receivables/{id}`,
  `GET /receivables/{id}/history`) for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402

from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402

GOAL_MS = 150.0
_spec = importlib.util.spec_from_file_location("bench_aging", Path(__file__).resolve().parent / "aging.py")
assert _spec and _spec.loader
bench_aging = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_aging)


def percentiles(fn: Callable[[int], Any], requests: int) -> tuple[float, float]:
    """(p50, p95) in ms of `requests` calls of fn(i), after two warm-up calls."""
    fn(0)
    fn(1)
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


@contextmanager
def store(db: str, pg_url: str) -> Iterator[str]:
    if db == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/console.db"
    else:
        with c.pg_schema(pg_url, prefix="bench_console") as schema:
            yield f"{pg_url}?schema={schema}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--size", type=int, default=100_000, help="receivables")
    parser.add_argument("--span-days", type=int, default=365, help="days over which invoices are issued")
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.db == "postgres" and (reason := c.postgres_reason(args.pg_url)):
        print(f"PostgreSQL unavailable: {reason}")
        return 1
    print(f"console pages benchmark on {args.db}: {c.machine()}; {args.requests} requests per page")
    with store(args.db, args.pg_url) as url:
        clock = FixedClock(bench_aging.START)
        services = build(Settings(DATABASE_URL=url, COLLECTIONS_RATE_LIMIT_BURST=0), clock=clock)
        try:
            started = time.perf_counter()
            events, end = bench_aging.record(services, args.size, args.span_days, args.seed)
            print(f"{args.size:,} receivables: {events:,} events recorded in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            services.projections.catch_up(["worklist", "contacts_log", "receivables", "aging"])
            print(f"worklist, contacts log, receivables list and aging caught up in {time.perf_counter() - started:.1f} s")
            clock.at = datetime(end.year, end.month, end.day, 2, tzinfo=UTC)  # after every change: the most open items
            measure(services, args)
        finally:
            services.close()
    return 0


def measure(services: Any, args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from collections_es.api.app import create_app
    app = create_app(services)
    now = services.clock.now()
    # collector-1 is one of the scenario's collectors
    tokens = {role: services.keys.add(f"{role}-1", role, now) for role in ("collector", "supervisor")}

    def signed_in(role: str) -> Any:
        client = TestClient(app, follow_redirects=False)
        page = client.get("/console/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/console/login", data={"token": tokens[role], "csrf": csrf}).status_code == 303
        return client

    collector, supervisor = signed_in("collector"), signed_in("supervisor")
    api = TestClient(app, headers={"Authorization": f"Bearer {tokens['supervisor']}"})
    api_collector = TestClient(app, headers={"Authorization": f"Bearer {tokens['collector']}"})
    rng = random.Random(args.seed)
    refs = [f"AG-{rng.randrange(args.size):07d}" for _ in range(args.requests + 2)]

    def ok(response: Any) -> Any:
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return response

    items = ok(api_collector.get("/worklist", params={"limit": 1000})).json()["items"]
    everyone = ok(api.get("/worklist", params={"limit": 1000})).json()["items"]
    print(f"as of {now:%Y-%m-%d}: collector-1 has {len(items):,} items (1,000 at most), everyone {len(everyone):,}")
    pages: list[tuple[str, Callable[[int], Any]]] = [
        ("console /console/worklist (collector)", lambda i: ok(collector.get("/console/worklist"))),
        ("console /console/worklist (supervisor, everyone)", lambda i: ok(supervisor.get("/console/worklist"))),
        ("console /console/receivables/{id}", lambda i: ok(supervisor.get(f"/console/receivables/{refs[i % len(refs)]}"))),
        ("console /console/reports/aging (by currency)", lambda i: ok(supervisor.get("/console/reports/aging"))),
        (
            "console /console/reports/aging (by customer)",
            lambda i: ok(supervisor.get("/console/reports/aging", params={"group_by": "customer"})),
        ),
        (
            "console /console/reports/aging (by collector)",
            lambda i: ok(supervisor.get("/console/reports/aging", params={"group_by": "collector"})),
        ),
        ("api     GET /worklist (collector, 100)", lambda i: ok(api_collector.get("/worklist"))),
        ("api     GET /reports/aging (by customer)", lambda i: ok(api.get("/reports/aging", params={"group_by": "customer"}))),
        ("api     GET /receivables/{id}", lambda i: ok(api.get(f"/receivables/{refs[i % len(refs)]}"))),
        ("api     GET /receivables/{id}/history", lambda i: ok(api.get(f"/receivables/{refs[i % len(refs)]}/history"))),
    ]
    print(f"\n  {'page':<50} {'p50 ms':>8} {'p95 ms':>8}  goal p95 <= {GOAL_MS:.0f} ms (console pages)")
    for name, call in pages:
        p50, p95 = percentiles(call, args.requests)
        verdict = ("PASS" if p95 <= GOAL_MS else "FAIL") if name.startswith("console") else ""
        print(f"  {name:<50} {p50:>8.1f} {p95:>8.1f}  {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
