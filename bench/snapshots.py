"""Loading a receivable with a long history: from a snapshot mid-interval against a full replay.

    .venv/bin/python bench/snapshots.py                       # SQLite and PostgreSQL, 1,000 events
    .venv/bin/python bench/snapshots.py --db sqlite --events 1000 --loads 200

Issue 16's goal: loading a 1,000-event receivable is >= 30x faster than replaying all of its
events, in the typical case, i.e. half-way between two snapshots (not just at one). The script
records one receivable with `--events` events (an issue, then payments of 0.01 saved in
chunks, as the application saves them, with COLLECTIONS_SNAPSHOT_INTERVAL's snapshots) plus
half an interval more, then times, median of `--loads` each:

- full replay: every event read and applied (what a load without snapshots costs);
- from the store: the latest snapshot and the events after it (`Collections.get_receivable`
  with the aggregate cache off), the issue's figure;
- from the aggregate cache (ADR 0064): one query for events newer than the cached version
  (none here) and a copy, which is what a command on a recently used receivable pays.

It checks that the three give the same aggregate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402

from collections_es.adapters.persistence import Database  # noqa: E402
from collections_es.adapters.policy_file import load_policy  # noqa: E402
from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Collections, Request, project  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SERVICE = Actor("bench", "service")
GOAL = 30.0


def median_ms(fn, loads: int) -> float:
    times = []
    for _ in range(loads):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    database = Database.parse(url)
    database.make_engine().dispose()  # makes the PostgreSQL schema
    results: dict[str, float] = {}
    for cache in (0, 1000):
        app = Collections(database.event_store_env(None, 20, cache), clock=FixedClock(NOW),
                          snapshot_interval=args.snapshot_interval)
        try:
            if cache == 0:
                app.install_policy(load_policy(None))
                app.register_customer(Request(SERVICE), customer_id="C-SNAP", name="Snapshot Co", timezone="Asia/Shanghai",
                                      tier="A", preferred_channel="email", contacts={"email": "ap@snap.example.com"})
                today = NOW.date()
                rid = app.issue_receivable(Request(SERVICE), invoice_number="INV-SNAP", customer_id="C-SNAP",
                                           amount=c.LARGE_AMOUNT, currency="CNY", issued_on=today - timedelta(days=5),
                                           due_on=today + timedelta(days=60)).resource.id
                total = args.events + args.snapshot_interval // 2
                receivable = app.get_receivable(rid)
                for n in range(1, total):
                    app.decide(Request(SERVICE), receivable, "record_payment", amount="0.01", method="bank_transfer",
                               paid_on=today - timedelta(days=1), reference=f"S-{n}")
                    if n % 25 == 0 or n == total - 1:
                        app.save(receivable)  # snapshots at the interval's multiples, as in service
                assert receivable.version == total
                full = lambda: project(None, app.events.get(rid))  # noqa: E731
                expected = full()
                assert expected.version == total and app.get_receivable(rid).paid == expected.paid
                results["events"] = total
                results["snapshot_at"] = total - total % args.snapshot_interval
                results["full_ms"] = median_ms(full, max(3, args.loads // 10))
                results["store_ms"] = median_ms(lambda: app.get_receivable(rid), args.loads)
                results["rid"] = rid  # type: ignore[assignment]
            else:
                rid = results["rid"]
                assert app.get_receivable(rid).version == results["events"]
                results["cache_ms"] = median_ms(lambda: app.get_receivable(rid), args.loads)
        finally:
            app.close()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--loads", type=int, default=100)
    p.add_argument("--snapshot-interval", type=int, default=50)
    p.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    args = p.parse_args()
    print(f"snapshot benchmark: {c.machine()}; load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    for db in args.db:
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                r = measure(f"sqlite:///{directory}/snap.db", args)
        else:
            if reason := c.postgres_reason(args.pg_url):
                print(f"postgres: skipped, {reason}")
                continue
            with c.pg_schema(args.pg_url, prefix="bench_snap") as schema:
                r = measure(f"{args.pg_url}?schema={schema}", args)
        ratio = r["full_ms"] / r["store_ms"]
        print(f"{db}: a receivable of {int(r['events']):,} events, latest snapshot at {int(r['snapshot_at']):,} "
              f"({int(r['events'] - r['snapshot_at'])} events after it)")
        print(f"  full replay {r['full_ms']:8.2f} ms | from the store (snapshot + events) {r['store_ms']:7.2f} ms "
              f"| from the aggregate cache {r['cache_ms']:6.2f} ms")
        print(f"  replay / snapshot load: {ratio:.1f}x (goal >= {GOAL:g}x): {'PASS' if ratio >= GOAL else 'FAIL'}; "
              f"replay / cached load: {r['full_ms'] / r['cache_ms']:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
