"""Encryption at rest (ADR 0030): what COLLECTIONS_CIPHER_KEY costs.

    .venv/bin/python bench/cipher.py                       # SQLite and PostgreSQL, defaults
    .venv/bin/python bench/cipher.py --customers 500 --contacts 2000 --loads 2000 --stores sqlite

For each store, fresh databases without the key and with it, alternated --rounds
times (the best of each figure kept), wired by `bootstrap.build` exactly as the
service is (no HTTP), one thread:

  append    --customers customers registered (with contacts) and one receivable
            issued for each, then --contacts contacts recorded on them   -> events/s
  read      --loads customers and receivables loaded from the store,
            at random (fixed seed), snapshots off                           -> loads/s
  project   every projection caught up from the start of that log       -> notifications/s
  query     the contact log (its free text is sealed) read page by page  -> rows/s
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402

from collections_es.adapters.cipher import new_key  # noqa: E402
from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.receivable import receivable_id  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402
from projections.contacts import read_contacts  # noqa: E402

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
CONTACT_DAY = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def timed(work: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    done = work()
    return done, time.perf_counter() - started


def run(url: str, key: str | None, args: argparse.Namespace) -> dict[str, float]:
    clock = FixedClock(START)
    # Snapshots off (interval beyond the run), projections applied only when asked.
    services = build(
        Settings(DATABASE_URL=url, COLLECTIONS_CIPHER_KEY=key, COLLECTIONS_SNAPSHOT_INTERVAL=1_000_000), clock=clock
    )
    app = services.app
    supervisor, service, collector = (Request(Actor(f"{r}-1", r)) for r in ("supervisor", "service", "collector"))
    rng = random.Random(args.seed)
    numbers = [f"INV-B-{i}" for i in range(args.customers)]
    try:

        def append() -> int:
            events = 0
            for i in range(args.customers):
                app.register_customer(
                    supervisor,
                    customer_id=f"C-B-{i}",
                    name=f"Bench Customer {i}",
                    timezone="Asia/Shanghai",
                    tier="A",
                    preferred_channel="email",
                    contacts={"email": f"ap{i}@bench.example", "phone": f"139{i:08d}", "address": f"{i} Bench Road"},
                    contact_persons=[{"name": f"Person {i}", "email": f"p{i}@bench.example", "phone": f"137{i:08d}"}],
                )
                app.issue_receivable(
                    service, invoice_number=numbers[i], customer_id=f"C-B-{i}", amount="1200.50", currency="CNY",
                    issued_on=START.date(), due_on=datetime(2026, 4, 1).date(), collector="collector-1",
                )
                events += 2
            clock.at = CONTACT_DAY
            for n in range(args.contacts):
                number = numbers[rng.randrange(args.customers)]
                app.execute(
                    collector, receivable_id(number), "record_contact", channel="phone", outcome="no_answer",
                    note=f"Called Person {n} on 139{n:08d}; no answer, will try p{n}@bench.example",
                )
                events += 1
            return events

        def read() -> int:
            for _ in range(args.loads):
                i = rng.randrange(args.customers)
                app.get_customer(f"C-B-{i}")
                app.get_receivable(receivable_id(numbers[i]))
            return args.loads * 2

        def project() -> int:
            return services.projections.catch_up()

        def query() -> int:
            rows, after = 0, None
            with services.engine.connect() as conn:
                while True:
                    page = read_contacts(conn, after=after, limit=500)
                    if not page:
                        return rows
                    rows += len(page)
                    after = page[-1]["position"]

        results: dict[str, float] = {}
        for name, work in (("append", append), ("read", read), ("project", project), ("query", query)):
            done, seconds = timed(work)
            results[name] = rate(done, seconds)
        return results
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--contacts", type=int, default=600)
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2, help="alternate no key / key this many times; best kept")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    args = parser.parse_args()
    key = new_key()
    units = {"append": "events/s", "read": "loads/s", "project": "notifications/s", "query": "rows/s"}
    print(f"{'store':10} {'phase':8} {'no key':>12} {'with key':>12} {'change':>8}  unit")
    for store in args.stores:
        figures: dict[str | None, dict[str, Any]] = {None: {}, key: {}}
        if store == "postgres" and (reason := c.postgres_reason(args.pg_url)):
            print(f"postgres: skipped ({reason})")
            continue
        for _ in range(args.rounds):  # alternated, best of each: warm-up and noise do not favour either
            for k in (None, key):
                if store == "postgres":
                    with c.pg_schema(args.pg_url, prefix="bench_cipher") as schema:
                        got = run(f"{args.pg_url}?schema={schema}", k, args)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        got = run(f"sqlite:///{tmp}/bench.db", k, args)
                for phase, value in got.items():
                    figures[k][phase] = max(figures[k].get(phase, 0.0), value)
        for phase, unit in units.items():
            plain, sealed = figures[None][phase], figures[key][phase]
            change = (sealed - plain) / plain * 100 if plain else 0.0
            print(f"{store:10} {phase:8} {plain:12,.0f} {sealed:12,.0f} {change:+7.0f}%  {unit}")


if __name__ == "__main__":
    main()
