"""Do the projections keep up with the writes, and how fast is a rebuild?

    .venv/bin/python bench/projections.py                          # (a) on sqlite and postgres, then (b) 1M events
    .venv/bin/python bench/projections.py --part catchup --db sqlite --duration 5 --threads 4
    .venv/bin/python bench/projections.py --part rebuild --events 100000          # a quick look
    .venv/bin/python bench/projections.py --part rebuild --events 100000 --profile # + cProfile top 25
    .venv/bin/python bench/projections.py --part rebuild --no-per-projection       # only all together

(a) catch-up against append. In a fresh store (a temporary SQLite file, or a throwaway
PostgreSQL schema), `--threads` threads send commands through the application for
`--duration` seconds, as a busy service's request threads do (`app.execute`, each with
its load, decide, save and conflict retries): payments (60 %), contacts (30 %) and
reassignments (10 %) on `--receivables` receivables issued first through
`app.issue_receivable`. No projection runs meanwhile. The script prints the sustained
append rate (events/s) and then times `runner.catch_up()` of ALL projections together
over the whole log, and prints its rate and the ratio catch-up ÷ append (goal ≥ 5).

(b) rebuild of a large log on SQLite. The log is the realistic history of
tests/integration/projection_history.py (about 7 events a receivable: reminders, payments,
promises, disputes, write-offs, ... in CNY, USD and JPY), recorded through the aggregates
and `app.save`. It is generated once per (events, seed) into bench/.data/ (not in git) and
reused by later runs. The script times `runner.rebuild()` of all projections together
(one read and decoding per batch, as `collections-es rebuild` does) and, unless
--no-per-projection, each projection alone, and prints events/s (goal ≥ 10,000/s for
all together). With --profile it profiles one rebuild of all projections together and
prints the top 25 functions by cumulative time.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402

from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import Services, build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.errors import CollectionsError  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402
from tests.integration.projection_history import COLLECTORS, START, generate  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
CATCHUP_TARGET = 5.0
CATCHUP_NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai: inside the contact window
REBUILD_TARGET = 10_000.0
HISTORY_VERSION = 1  # bump when projection_history.py changes what it generates
EVENTS_PER_RECEIVABLE = 7.2
SERVICE = Actor("bench", "service")


# ---------------------------------------------------------------------------- (a) catch-up vs append


def append_phase(services: Services, receivables: int, threads: int, duration: float, seed: int) -> dict[str, float]:
    """Commands from `threads` threads for `duration` s; returns events appended and the rate."""
    app = services.app
    customers = max(1, receivables // 2)
    for n in range(customers):
        app.register_customer(Request(SERVICE), customer_id=f"C-BENCH-{n}", name=f"Bench Trading {n}",
                              timezone="Asia/Shanghai", tier="A", preferred_channel="email",
                              contacts={"email": f"ap{n}@bench.example.com"})
    ids = []
    customer_of: dict[Any, int] = {}
    today = services.clock.now().date()
    for i in range(receivables):
        outcome = app.issue_receivable(
            Request(SERVICE), invoice_number=f"BENCH-{i:06d}", customer_id=f"C-BENCH-{i % customers}",
            amount=c.LARGE_AMOUNT, currency="CNY", issued_on=today, due_on=today + timedelta(days=60),
            collector=COLLECTORS[i % len(COLLECTORS)],
        )
        ids.append(outcome.resource.id)
        customer_of[outcome.resource.id] = i % customers
    # Contacts stay within the policy's caps (3 a receivable, 5 a customer, a week), by e-mail, in the
    # contact window (the clock is pinned to a Tuesday 10:00 in Shanghai): a contact the caps would not
    # allow becomes a payment, so the mix measures work the service does, not refusals (issue 16).
    contacts_left = {rid: 3 for rid in ids}
    customer_left = {n: 5 for n in range(customers)}
    budget = threading.Lock()
    mix = collections.Counter()
    head_before = services.projections.head()
    counts = [0] * threads
    errors: list[str] = []
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(w: int) -> None:
        rng = random.Random(seed * 100 + w)
        collector = Actor(f"collector-{w}", "collector")
        supervisor = Actor("supervisor-1", "supervisor")
        n = 0
        barrier.wait()
        while not stop.is_set():
            rid = ids[rng.randrange(len(ids))]
            roll = rng.random()
            if 0.6 <= roll < 0.9:
                with budget:
                    allowed = contacts_left[rid] > 0 and customer_left[customer_of[rid]] > 0
                    if allowed:
                        contacts_left[rid] -= 1
                        customer_left[customer_of[rid]] -= 1
                if not allowed:
                    roll = 0.0
            kind = "payment" if roll < 0.6 else "contact" if roll < 0.9 else "reassignment"
            mix[kind] += 1
            try:
                if roll < 0.6:
                    app.execute(Request(SERVICE), rid, "record_payment", amount="0.01", method="bank_transfer",
                                paid_on=today, reference=f"P-{w}-{n}")
                elif roll < 0.9:
                    app.execute(Request(collector), rid, "record_contact", channel="email", outcome="reached",
                                note="wrote about the invoice")
                else:
                    app.execute(Request(supervisor), rid, "assign_collector", collector=rng.choice(COLLECTORS))
                counts[w] += 1
            except CollectionsError as exc:  # a refusal (rule) or e.g. ConcurrencyExhaustedError: counted, printed
                errors.append(f"{type(exc).__name__}: {getattr(exc, 'rule_id', None) or exc}")
            n += 1

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    appended = services.projections.head() - head_before
    return {"events": appended, "commands": sum(counts), "seconds": elapsed, "rate": appended / elapsed,
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "refusals": collections.Counter(errors).most_common(), "mix": dict(mix)}


def catchup_phase(services: Services) -> dict[str, float]:
    runner = services.projections
    head = runner.head()
    started = time.perf_counter()
    read = runner.catch_up()
    elapsed = time.perf_counter() - started
    assert set(runner.positions().values()) == {head}, runner.positions()
    return {"events": head, "read": read, "seconds": elapsed, "rate": head / elapsed}


def run_catchup(db: str, args: argparse.Namespace) -> dict[str, Any] | None:
    def measure(url: str) -> dict[str, Any]:
        services = build(Settings(DATABASE_URL=url), clock=FixedClock(CATCHUP_NOW))
        try:
            append = append_phase(services, args.receivables, args.threads, args.duration, args.seed)
            catchup = catchup_phase(services)
            return {"append": append, "catchup": catchup}
        finally:
            services.close()

    if db == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            return measure(f"sqlite:///{directory}/bench.db")
    if reason := c.postgres_reason(args.pg_url):
        print(f"postgres: skipped, PostgreSQL unavailable: {reason}")
        return None
    with c.pg_schema(args.pg_url, prefix="bench_proj") as schema:
        return measure(f"{args.pg_url}?schema={schema}")


# ---------------------------------------------------------------------------- (b) rebuild


def rss_mb() -> float:
    """This process's resident memory, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def history_file(events: int, seed: int) -> Path:
    """The cached SQLite file with a generated history of about `events` events (made if missing)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"history-v{HISTORY_VERSION}-{events}-seed{seed}.db"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    receivables = max(1, round(events / EVENTS_PER_RECEIVABLE))
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    print(f"generating about {events:,} events ({receivables:,} receivables, seed {seed}) into {path} ...", flush=True)
    services = build(Settings(DATABASE_URL=f"sqlite:///{partial}"), clock=FixedClock(START))
    started = time.perf_counter()
    last = [started]

    def report(done: int) -> None:
        if time.perf_counter() - last[0] > 15:
            last[0] = time.perf_counter()
            print(f"  {done:,} events, {done / (last[0] - started):,.0f}/s", flush=True)

    try:
        # Spread the invoices over more days as the history grows, so each day stays realistic.
        span = max(150, receivables // 60)
        stats = generate(services.app, receivables, seed=seed, save_every=2_000, after_save=report, span_days=span)
        head = services.projections.head()
    finally:
        services.close()
    seconds = time.perf_counter() - started
    print(f"generated {stats.events:,} events in {seconds:.0f} s ({stats.events / seconds:,.0f}/s)", flush=True)
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    shutil.move(partial, path)
    meta.write_text(json.dumps({"events": stats.events, "head": head, "receivables": stats.receivables,
                                "by_type": dict(stats.by_type), "generated_in_s": round(seconds, 1)}, indent=1))
    return path


def keep_only_the_log(path: Path) -> None:
    """Drop every table but the event store's, so the projections' tables are made afresh
    with the current code's columns (the cached file may predate a schema change)."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table not in ("stored_events", "stored_snapshots") and not table.startswith("sqlite_"):
                conn.execute(f'DROP TABLE "{table}"')


def run_rebuild(args: argparse.Namespace) -> None:
    path = history_file(args.events, args.seed)
    keep_only_the_log(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    services = build(Settings(DATABASE_URL=f"sqlite:///{path}"), clock=FixedClock(START))
    try:
        runner = services.projections
        head = runner.head()
        names = list(runner.projections)
        print(f"\n(b) rebuild on sqlite: {head:,} notifications ({meta['receivables']:,} receivables) in {path.name}, "
              f"batch size {args.batch_size}")
        if args.profile:
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            runner.rebuild(batch_size=args.batch_size)
            profiler.disable()
            seconds = time.perf_counter() - started
            print(f"profiled rebuild of all: {seconds:.1f} s ({head / seconds:,.0f} events/s under cProfile)")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        rss_before = rss_mb()
        samples: list[float] = []

        def sample(position: int, _head: int) -> None:
            samples.append(rss_mb())

        started = time.perf_counter()
        runner.rebuild(batch_size=args.batch_size, progress=sample)
        seconds = time.perf_counter() - started
        rate = head / seconds
        print(f"resident memory: {rss_before:.0f} MB before, {max(samples or [rss_before]):.0f} MB at most during "
              f"({len(samples)} batches; after the first tenth {statistics.median(samples[len(samples) // 10:] or [0]):.0f} MB "
              f"median), {rss_mb():.0f} MB after")
        verdict = "PASS" if rate >= REBUILD_TARGET else "FAIL"
        print(f"{'all ' + str(len(names)) + ' together':<22} {seconds:>8.1f} s {rate:>10,.0f} events/s   "
              f"(goal >= {REBUILD_TARGET:,.0f}/s): {verdict}")
        if args.per_projection:
            total = 0.0
            for name in names:
                started = time.perf_counter()
                runner.rebuild(name, batch_size=args.batch_size)
                seconds = time.perf_counter() - started
                total += seconds
                print(f"{name:<22} {seconds:>8.1f} s {head / seconds:>10,.0f} events/s")
            print(f"{'sum of the above':<22} {total:>8.1f} s {head / total:>10,.0f} events/s")
    finally:
        services.close()


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["catchup", "rebuild", "both"], default="both")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both", help="for (a)")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--threads", type=int, default=4, help="(a) command threads")
    parser.add_argument("--duration", type=float, default=10.0, help="(a) seconds of commands")
    parser.add_argument("--receivables", type=int, default=200, help="(a) receivables the commands spread over")
    parser.add_argument("--events", type=int, default=1_000_000, help="(b) about this many events in the log")
    parser.add_argument("--batch-size", type=int, default=5_000, help="(b) notifications per batch (the CLI's default)")
    parser.add_argument("--per-projection", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", action="store_true", help="(b) cProfile one rebuild, print the top 25")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"projections benchmark: {c.machine()}, {date.today().isoformat()}")
    if args.part in ("catchup", "both"):
        print(f"\n(a) catch-up vs append: {args.threads} threads x {args.duration:g} s of commands over "
              f"{args.receivables} receivables, then catch_up() of all projections")
        print(f"{'db':<9} {'appended':>9} {'append/s':>9} {'errors':>7} {'catch-up s':>11} {'catch-up/s':>11} {'ratio':>7}")
        for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
            result = run_catchup(db, args)
            if result is None:
                continue
            a, k = result["append"], result["catchup"]
            ratio = k["rate"] / a["rate"]
            verdict = "PASS" if ratio >= CATCHUP_TARGET else "FAIL"
            print(f"{db:<9} {a['events']:>9,} {a['rate']:>9,.0f} {a['errors']:>7} {k['seconds']:>11.2f} "
                  f"{k['rate']:>11,.0f} {ratio:>7.2f}  (goal >= {CATCHUP_TARGET:g}): {verdict}")
            attempted = a["commands"] + a["errors"]
            print(f"          commands: {attempted:,} attempted, {a['commands']:,} done, {a['errors']:,} refused or failed "
                  f"({a['errors'] / max(1, attempted):.1%})")
            print(f"          mix: {', '.join(f'{k} {v:,}' for k, v in sorted(a['mix'].items()))}")
            for what, n in a["refusals"]:
                print(f"            {n:>6,}  {what}")
    if args.part in ("rebuild", "both"):
        run_rebuild(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
