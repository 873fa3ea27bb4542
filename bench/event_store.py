"""Event store comparison for the ADR: eventsourcing's core recorders (what the
project uses: eventsourcing.sqlite / eventsourcing.postgres) against
eventsourcing-sqlalchemy, each on SQLite and PostgreSQL.

    .venv/bin/python bench/event_store.py                          # all four, defaults
    .venv/bin/python bench/event_store.py --receivables 300 --payments 1000 --loads 1000 --threads 1 4
    .venv/bin/python bench/event_store.py --stores core-postgres sqlalchemy-postgres

Each combination gets a fresh store (a temp SQLite file, or a temp PostgreSQL
schema that is dropped afterwards) and the project's own `Collections`
application with its `Receivable` aggregate (no HTTP, no projections):

  issue     --receivables times: Receivable.issue(...) + app.save()      -> appends/s (new aggregates)
  payment   --payments times, receivables picked at random (fixed seed):
            app.repository.get() + record_payment() + app.save()         -> payments/s, and the load and
                                                                            the save of each timed apart
  load      --loads times, random receivables: app.repository.get()     -> loads/s

Each phase stops early after --max-seconds. With --threads N > 1 the same
work is split over N threads sharing the application (as the server's
thread pool does); a concurrent save of the same version is retried (counted
as a conflict). Settings: core uses `Database.parse(url).event_store_env()`
exactly as the service does; eventsourcing-sqlalchemy gets
PERSISTENCE_MODULE=eventsourcing_sqlalchemy, SQLALCHEMY_URL (and
SQLALCHEMY_SCHEMA on PostgreSQL), its other settings at their defaults.
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402

STORES = ("core-sqlite", "sqlalchemy-sqlite", "core-postgres", "sqlalchemy-postgres")


# ---------------------------------------------------------------------------- the application


def make_app(env: dict[str, str], snapshot_interval: int) -> Any:
    """The project's Collections application, constructed as bootstrap.build does
    (tolerating the constructor's recent changes: `policy=` then `install_policy`)."""
    from collections_es.adapters.policy_file import load_policy
    from collections_es.application.clock import SystemClock
    from collections_es.application.service import Collections

    policy = load_policy(None)
    kwargs: dict[str, Any] = {"clock": SystemClock()}
    params = inspect.signature(Collections.__init__).parameters
    if "snapshot_interval" in params:
        kwargs["snapshot_interval"] = snapshot_interval
    if "policy" in params:
        kwargs["policy"] = lambda: policy
    app = Collections(env, **kwargs)
    if hasattr(app, "install_policy"):
        app.install_policy(policy)
    return app


def context_for(app: Any) -> Any:
    """A command context as the service makes one."""
    from collections_es.application.service import Request
    from collections_es.domain.trail import Actor

    return app._context(Request(Actor("bench", "service")))


def core_env(url: str) -> dict[str, str]:
    from collections_es.adapters.persistence import Database

    return Database.parse(url).event_store_env()


def sqlalchemy_env(url: str, schema: str | None) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing_sqlalchemy", "SQLALCHEMY_URL": c.sa_url(url), "CREATE_TABLE": "y"}
    if schema:
        env["SQLALCHEMY_SCHEMA"] = schema
    return env


# ---------------------------------------------------------------------------- measurement


@dataclass
class Phase:
    ops: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    parts: dict[str, list[float]] = field(default_factory=dict)  # per-op latencies by part
    conflicts: int = 0
    stopped_early: bool = False

    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else float("nan")

    def add(self, part: str, dt: float) -> None:
        self.parts.setdefault(part, []).append(dt)


def run_threads(n_ops: int, threads: int, max_seconds: float, body: Any) -> Phase:
    """Run body(thread_index, op_index, phase, lock) n_ops times over `threads` threads."""
    phase = Phase()
    lock = threading.Lock()
    counter = iter(range(n_ops))
    deadline = time.perf_counter() + max_seconds
    barrier = threading.Barrier(threads + 1)

    def worker(w: int) -> None:
        local = Phase()
        barrier.wait()
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body(w, i, local)
            local.ops += 1
        with lock:
            phase.ops += local.ops
            phase.conflicts += local.conflicts
            for k, v in local.parts.items():
                phase.parts.setdefault(k, []).extend(v)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    c0 = time.process_time()
    t0 = time.perf_counter()
    barrier.wait()
    for t in ts:
        t.join()
    phase.elapsed = time.perf_counter() - t0
    phase.cpu = time.process_time() - c0
    phase.stopped_early = phase.ops < n_ops
    return phase


@dataclass
class Result:
    store: str
    threads: int
    issue: Phase
    pay: Phase
    load: Phase
    events: int  # sum of the receivables' versions, read back
    saved: int  # issues + payments saved

    @property
    def consistent(self) -> bool:
        return self.events == self.saved


def bench_store(store: str, url: str, env: dict[str, str], threads: int, args: argparse.Namespace) -> Result:
    from eventsourcing.persistence import IntegrityError

    from collections_es.domain.receivable import Receivable

    app = make_app(env, args.snapshot_interval)
    try:
        paid_on = date.fromisoformat(c.PAID_ON)
        issued_on, due_on = date.fromisoformat(c.ISSUED_ON), date.fromisoformat(c.DUE_ON)
        ids: list[uuid.UUID] = [uuid.UUID(int=0)] * args.receivables
        tag = uuid.uuid4().hex[:6]

        def issue(w: int, i: int, ph: Phase) -> None:
            t0 = time.perf_counter()
            r = Receivable.issue(
                context_for(app),
                invoice_number=f"INV-{tag}-{i:06d}",
                customer_id="C-BENCH",
                timezone="Asia/Shanghai",
                amount=c.LARGE_AMOUNT,
                currency="CNY",
                issued_on=issued_on,
                due_on=due_on,
            )
            t1 = time.perf_counter()
            app.save(r)
            ph.add("save", time.perf_counter() - t1)
            ph.add("decide", t1 - t0)
            ids[i] = r.id

        issue_ph = run_threads(args.receivables, threads, args.max_seconds, issue)
        ids = [i for i in ids if i.int]  # those issued (all, unless --max-seconds cut the phase short)
        rngs = [random.Random(args.seed * 1000 + w) for w in range(threads)]

        def pay(w: int, i: int, ph: Phase) -> None:
            rid = ids[rngs[w].randrange(len(ids))]
            while True:
                t0 = time.perf_counter()
                r = app.repository.get(rid)
                t1 = time.perf_counter()
                r.record_payment(context_for(app), amount="0.01", method="bank_transfer", paid_on=paid_on, reference=f"P-{w}-{i}")
                t2 = time.perf_counter()
                try:
                    app.save(r)
                except IntegrityError:
                    ph.conflicts += 1
                    continue
                t3 = time.perf_counter()
                ph.add("load", t1 - t0)
                ph.add("decide", t2 - t1)
                ph.add("save", t3 - t2)
                return

        pay_ph = run_threads(args.payments, threads, args.max_seconds, pay)

        def load(w: int, i: int, ph: Phase) -> None:
            t0 = time.perf_counter()
            app.repository.get(ids[rngs[w].randrange(len(ids))])
            ph.add("load", time.perf_counter() - t0)

        load_ph = run_threads(args.loads, threads, args.max_seconds, load)

        # Every payment is one event: check the store agrees.
        events = sum(app.repository.get(rid).version for rid in ids)
        expected = issue_ph.ops + pay_ph.ops
        return Result(store, threads, issue_ph, pay_ph, load_ph, events, expected)
    finally:
        app.close()


def run_store(store: str, threads: int, args: argparse.Namespace) -> Result | None:
    kind, db = store.split("-")
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-es-") as tmp:
            url = f"sqlite:///{tmp}/events.db"
            env = core_env(url) if kind == "core" else sqlalchemy_env(url, None)
            return bench_store(store, url, env, threads, args)
    reason = c.postgres_reason(args.pg_url)
    if reason:
        print(f"   {store}: skipped, PostgreSQL unavailable: {reason}")
        return None
    with c.pg_schema(args.pg_url, "benches") as schema:
        url = f"{args.pg_url}?schema={schema}"
        env = core_env(url) if kind == "core" else sqlalchemy_env(args.pg_url, schema)
        return bench_store(store, url, env, threads, args)


# ---------------------------------------------------------------------------- report


def ms(values: list[float], q: float) -> float:
    return c.percentile(sorted(values), q) * 1000


def report(results: list[Result]) -> None:
    print(f"\n   {'store':20s} {'thr':>3s} {'issue/s':>8s} {'pay/s':>7s} {'loads/s':>8s}"
          f" {'pay: load p50':>13s} {'save p50':>9s} {'save p99':>9s} {'load-phase p50':>14s}"
          f" {'cpu/pay ms':>10s} {'conflicts':>9s}")
    for r in results:
        print(
            f"   {r.store:20s} {r.threads:3d} {r.issue.rate():8.0f} {r.pay.rate():7.0f} {r.load.rate():8.0f}"
            f" {ms(r.pay.parts.get('load', []), 50):13.2f} {ms(r.pay.parts.get('save', []), 50):9.2f}"
            f" {ms(r.pay.parts.get('save', []), 99):9.2f} {ms(r.load.parts.get('load', []), 50):14.2f}"
            f" {r.pay.cpu / max(1, r.pay.ops) * 1000:10.2f} {r.pay.conflicts:9d}"
            + ("  (stopped at --max-seconds)" if (r.issue.stopped_early or r.pay.stopped_early or r.load.stopped_early) else "")
        )
    by_key = {(r.store, r.threads): r for r in results}
    print("\n   ratios (sqlalchemy / core, same database and threads; > 1 means eventsourcing-sqlalchemy is faster):")
    for r in results:
        if not r.store.startswith("sqlalchemy"):
            continue
        core = by_key.get((r.store.replace("sqlalchemy", "core"), r.threads))
        if core is None:
            continue
        db = r.store.split("-")[1]
        print(
            f"     {db:9s} threads {r.threads}: issue {r.issue.rate() / core.issue.rate():5.2f}  "
            f"payment {r.pay.rate() / core.pay.rate():5.2f}  load {r.load.rate() / core.load.rate():5.2f}"
        )
    print("   ratios (postgres / sqlite, same recorder and threads):")
    for r in results:
        if not r.store.endswith("postgres"):
            continue
        lite = by_key.get((r.store.replace("postgres", "sqlite"), r.threads))
        if lite is None:
            continue
        kind = r.store.split("-")[0]
        print(
            f"     {kind:10s} threads {r.threads}: issue {r.issue.rate() / lite.issue.rate():5.2f}  "
            f"payment {r.pay.rate() / lite.pay.rate():5.2f}  load {r.load.rate() / lite.load.rate():5.2f}"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 4], help="thread counts to run (default 1 4)")
    p.add_argument("--receivables", type=int, default=200, help="receivables issued (default 200)")
    p.add_argument("--payments", type=int, default=600, help="payments recorded (default 600)")
    p.add_argument("--loads", type=int, default=600, help="loads (default 600)")
    p.add_argument("--max-seconds", type=float, default=20.0, help="cap per phase (default 20)")
    p.add_argument("--snapshot-interval", type=int, default=50, help="as COLLECTIONS_SNAPSHOT_INTERVAL (default 50)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    args = p.parse_args()

    import eventsourcing_sqlalchemy  # noqa: F401 - fail early with a clear message if the bench extra is missing

    print(f"event store benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}; {c.machine()}")
    print(f"   {args.receivables} receivables, {args.payments} payments, {args.loads} loads per run; "
          f"snapshot interval {args.snapshot_interval}; seed {args.seed}; load average {os.getloadavg()[0]:.2f}")
    results: list[Result] = []
    for threads in args.threads:
        for store in args.stores:
            t0 = time.perf_counter()
            res = run_store(store, threads, args)
            if res is not None:
                results.append(res)
                check = "events read back = events saved" if res.consistent else f"!! {res.events} events read back, {res.saved} saved"
                print(f"   done {store} threads={threads} in {time.perf_counter() - t0:.1f} s; {check}", flush=True)
    report(results)
    return 0 if all(r.consistent for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
