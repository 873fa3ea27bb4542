"""Does a scheduler tick cost what is due, not what is open? (docs/design.md section 4)

    .venv/bin/python bench/tick.py                       # SQLite, 1,000 then 100,000 open receivables
    .venv/bin/python bench/tick.py --sizes 1000 10000 100000 --rounds 5 --repeat 50
    .venv/bin/python bench/tick.py --db postgres         # the same on a throwaway PostgreSQL schema

For each size N the script makes a fresh store and:

1. issues `--rounds` × `--due` real receivables through the application (a customer in
   Shanghai, due on consecutive days), so that at round r's instant exactly `--due`
   pre-due reminders are owed, backed by real aggregates;
2. fills the timers table (`rm_timers`) with rows for the other N − rounds × due open
   receivables directly with SQLAlchemy (issuing them through the application would take
   hours): two timers each, all after the last round's instant, as the timers projection
   would hold them for receivables not yet due;
3. times `scheduler.due(now)` (`--repeat` times, median) with nothing due and with `--due`
   timers due, then, for each round, one `scheduler.tick(now)` that fires those reminders
   (median over the rounds), and checks that each fired as a `ReminderSent`.

It prints both figures per size and the ratios largest ÷ smallest size; the issue's target
is a ratio ≤ 1.5.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.receivable import Receivable  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402
from projections.timers import timers  # noqa: E402

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
FIRST_DUE = date(2026, 3, 18)  # Wednesday; round r's invoices are due r days later
SERVICE = Actor("bench", "service")
TARGET = 1.5


def round_instant(r: int) -> datetime:
    """An hour after round r's reminders are owed: 09:00 in Shanghai a week before its due date."""
    due_on = FIRST_DUE + timedelta(days=r)
    reminder_day = due_on - timedelta(days=7)
    return datetime(reminder_day.year, reminder_day.month, reminder_day.day, 2, 0, tzinfo=UTC)


def issue_real(services: Any, rounds: int, per_round: int) -> None:
    services.app.register_customer(
        Request(SERVICE), customer_id="C-BENCH", name="Bench Trading", timezone="Asia/Shanghai",
        tier="A", preferred_channel="email", contacts={"email": "ap@bench.example.com"},
    )
    for r in range(rounds):
        for i in range(per_round):
            services.app.issue_receivable(
                Request(SERVICE), invoice_number=f"BENCH-{r}-{i}", customer_id="C-BENCH", amount="1000.00",
                currency="CNY", issued_on=date(2026, 3, 2), due_on=FIRST_DUE + timedelta(days=r),
            )
    services.projections.catch_up()


def seed_waiting(services: Any, count: int, after: datetime, seed: int) -> float:
    """`count` open receivables' timers, none due before `after`; returns the seconds it took."""
    rng = random.Random(seed)
    started = time.perf_counter()
    base = after.replace(tzinfo=None) + timedelta(days=2)
    chunk: list[dict[str, Any]] = []
    with services.engine.begin() as conn:
        for n in range(count):
            rid = str(uuid.UUID(int=rng.getrandbits(128)))
            at = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
            chunk.append({"receivable_id": rid, "kind": "fall_due", "at": at, "command": "fall_due",
                          "reason": "seeded", "policy_version": "2026.1"})
            chunk.append({"receivable_id": rid, "kind": "limitation_warning", "at": at + timedelta(days=1000),
                          "command": "warn_limitation", "reason": "seeded", "policy_version": "2026.1"})
            if len(chunk) >= 20_000 or n == count - 1:
                conn.execute(timers.insert(), chunk)
                chunk = []
    return time.perf_counter() - started


def median_seconds(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def measure(url: str, size: int, rounds: int, per_round: int, repeat: int, seed: int) -> dict[str, float]:
    clock = FixedClock(START)
    services = build(Settings(DATABASE_URL=url), clock=clock)
    try:
        issue_real(services, rounds, per_round)
        seeded_s = seed_waiting(services, size - rounds * per_round, round_instant(rounds - 1), seed)
        with services.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(timers)).scalar_one()
        idle = median_seconds(lambda: services.scheduler.due(START), repeat)
        first = round_instant(0)
        assert len(services.scheduler.due(first, limit=10 * per_round)) == per_round, "exactly --due timers due"
        due_s = median_seconds(lambda: services.scheduler.due(first), repeat)
        ticks = []
        for r in range(rounds):
            now = round_instant(r)
            clock.at = now
            t = time.perf_counter()
            fired = services.scheduler.tick(now)
            ticks.append(time.perf_counter() - t)
            assert len(fired) == per_round and all(f.outcome == "fired" for f in fired), fired[:3]
        reminders = sum(
            1 for n in services.app.recorder.select_notifications(start=1, limit=10 * rounds * per_round + 100)
            if n.topic.endswith(Receivable.ReminderSent.__qualname__)
        )
        assert reminders == rounds * per_round, reminders
        return {"rows": rows, "seed_s": seeded_s, "idle_ms": idle * 1000, "due_ms": due_s * 1000,
                "tick_ms": statistics.median(ticks) * 1000, "tick_min_ms": min(ticks) * 1000,
                "tick_max_ms": max(ticks) * 1000}
    finally:
        services.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000], help="open receivables")
    parser.add_argument("--due", type=int, default=100, help="timers due at each round's instant")
    parser.add_argument("--rounds", type=int, default=3, help="ticks measured per size (median)")
    parser.add_argument("--repeat", type=int, default=20, help="due() calls per figure (median)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if min(args.sizes) < args.rounds * args.due:
        parser.error("every size must hold at least rounds × due receivables")
    if args.db == "postgres" and (reason := c.postgres_reason(args.pg_url)):
        print(f"PostgreSQL unavailable: {reason}")
        return 1

    print(f"tick benchmark on {args.db}: {c.machine()}")
    print(f"{args.due} timers due per tick, {args.rounds} ticks per size, due() median of {args.repeat}")
    print(f"{'open receivables':>17} {'timer rows':>11} {'seed s':>7} {'due() idle ms':>14} "
          f"{'due() ms':>9} {'tick ms (min-max)':>24}")
    results: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        if args.db == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                results[size] = measure(f"sqlite:///{directory}/tick.db", size, args.rounds, args.due, args.repeat, args.seed)
        else:
            with c.pg_schema(args.pg_url, prefix="bench_tick") as schema:
                results[size] = measure(f"{args.pg_url}?schema={schema}", size, args.rounds, args.due, args.repeat, args.seed)
        r = results[size]
        print(f"{size:>17,} {r['rows']:>11,} {r['seed_s']:>7.1f} {r['idle_ms']:>14.3f} {r['due_ms']:>9.3f} "
              f"{r['tick_ms']:>9.1f} ({r['tick_min_ms']:.1f}-{r['tick_max_ms']:.1f})")
    small, large = min(results), max(results)
    due_ratio = results[large]["due_ms"] / results[small]["due_ms"]
    tick_ratio = results[large]["tick_ms"] / results[small]["tick_ms"]
    verdict = "PASS" if max(due_ratio, tick_ratio) <= TARGET else "FAIL"
    print(f"ratio {large:,}/{small:,}: due() {due_ratio:.2f}, tick {tick_ratio:.2f} (target <= {TARGET}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
