"""Reproduce the SQLite stall between concurrent writers and the projection follower.

    .venv/bin/python bench/sqlite_follower_stall.py              # all four combinations
    .venv/bin/python bench/sqlite_follower_stall.py --threads 8 --per-thread 40

In-process, no HTTP: --threads threads each issue --per-thread receivables
through the application service, on a fresh SQLite file, with and without the
projection follower thread (`bootstrap.follow_projections`, as `collections-es
serve` runs it) and with and without an API-key check before each command (as
every HTTP request does). Prints the elapsed time, max and p99 latency and the
errors per combination.

What it shows (2026-11-23, see README.md): with the follower, commands stall
for ~5 s and some fail with eventsourcing's ConnectionUnavailableError. The
follower's batch runs in one SQLAlchemy transaction, which on SQLite begins
IMMEDIATE (takes the write lock); inside it the timers projection loads
receivables through the event store's connection pool; that pool has one
writer connection, and a thread waiting for it holds the pool's fairness
semaphore, so the follower's read queues behind a writer that waits for the
SQLite lock the follower holds. Only the pool's 5 s timeout breaks the cycle.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402


def run(follow: bool, auth: bool, args: argparse.Namespace) -> None:
    from collections_es.application.service import Request
    from collections_es.bootstrap import build, follow_projections
    from collections_es.config import Settings
    from collections_es.domain.trail import Actor

    with tempfile.TemporaryDirectory(prefix="bench-stall-") as d:
        services = build(Settings(DATABASE_URL=f"sqlite:///{d}/collections.db"))
        token = services.keys.add("bench", "service", services.clock.now())
        actor = Actor("bench", "service")
        services.app.register_customer(
            Request(actor), customer_id="C1", name="X", timezone="Asia/Shanghai", tier="standard",
            preferred_channel="email", contacts={},
        )
        if follow:
            follow_projections(services)
        errors: collections.Counter[str] = collections.Counter()
        latencies: list[float] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(args.per_thread):
                t0 = time.perf_counter()
                try:
                    if auth:
                        services.keys.authenticate(token)
                    services.app.issue_receivable(
                        Request(actor), invoice_number=f"I{k}-{i}", customer_id="C1", amount=c.LARGE_AMOUNT,
                        currency="CNY", issued_on=date.fromisoformat(c.ISSUED_ON),
                        due_on=date.fromisoformat(c.DUE_ON), collector=None,
                    )
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    with lock:
                        errors[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1
                with lock:
                    latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        services.close()
    latencies.sort()
    print(
        f"follower {'on ' if follow else 'off'}  api-key check {'on ' if auth else 'off'}: "
        f"{len(latencies)} issues in {elapsed:5.1f} s, max {latencies[-1] * 1000:6.0f} ms, "
        f"p99 {c.percentile(latencies, 99) * 1000:6.0f} ms, errors {dict(errors) or 0}",
        flush=True,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--per-thread", type=int, default=40)
    args = p.parse_args()
    import logging

    logging.disable(logging.CRITICAL)  # the follower logs each failed catch-up with a traceback
    for follow in (False, True):
        for auth in (False, True):
            run(follow, auth, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
