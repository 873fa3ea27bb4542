"""What a signed checkpoint costs (ADR 0061), and what exact sums cost the KPI report (ADR 0060).

    .venv/bin/python bench/checkpoints.py                     # SQLite, 10,000 receivables
    .venv/bin/python bench/checkpoints.py --receivables 50000 --db postgres

The script imports `--receivables` receivables (one customer, CNY, through the CSV import:
one `Issued` event each), records `--payments` payments, then times:

1. the first checkpoint (a walk of the whole log: every event checked, every head signed);
2. `--more` further payments, then the next checkpoint (incremental: only the events since
   the first one are read) — the figure that matters for the periodic checkpoint;
3. `verify` compared with the latest checkpoint (the whole walk, plus one comparison per head);
4. the KPI report's query (`kpis.compute`) over the period, whose sums are `exact_sum`.

Goals: an incremental checkpoint costs what the log grew, not its size (so ≪ the first), and
verify with a checkpoint costs about what verify without one does.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402

from collections_es.adapters.signing import new_key  # noqa: E402
from collections_es.application import audit  # noqa: E402
from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.receivable import receivable_id  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402
from collections_es.imports import import_csv  # noqa: E402
from projections import kpis  # noqa: E402

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SUPERVISOR = Actor("bench", "supervisor")


def timed(work):  # noqa: ANN001, ANN201
    began = time.perf_counter()
    result = work()
    return result, time.perf_counter() - began


def run(url: str, receivables: int, payments: int, more: int) -> None:
    services = build(Settings(DATABASE_URL=url, COLLECTIONS_SIGNING_KEY=new_key()), clock=FixedClock(START))
    app = services.app
    try:
        app.register_customer(Request(SUPERVISOR), customer_id="C-1", name="Bench Ltd", timezone="Asia/Shanghai",
                              tier="B", preferred_channel="email", contacts={"email": "ap@example.com"})
        lines = ["invoice_number,customer_id,amount,currency,issued_on,due_on,collector"]
        lines += [f"B-{i:06d},C-1,1200.50,CNY,2026-02-02,2026-03-01,collector-1" for i in range(receivables)]
        _, seconds = timed(lambda: import_csv(app, SUPERVISOR, "receivables", io.BytesIO("\n".join(lines).encode())))
        print(f"imported {receivables:,} receivables in {seconds:.1f} s")

        def pay(first: int, count: int) -> None:
            for i in range(first, first + count):
                app.execute(Request(SUPERVISOR), receivable_id(f"B-{i % receivables:06d}"), "record_payment",
                            amount="1.00", method="bank_transfer", paid_on=date(2026, 3, 1), reference=f"P-{i}")

        pay(0, payments)
        head = app.recorder.max_notification_id()
        first, full = timed(services.checkpoints.take)
        print(f"first checkpoint over {head:,} events, {first.chains:,} chains: {full:.2f} s "
              f"({head / full:,.0f} events/s)")
        pay(payments, more)
        second, incremental = timed(services.checkpoints.take)
        print(f"next checkpoint after {more:,} more events: {incremental * 1000:.0f} ms "
              f"(goal: ≪ the first; ratio {incremental / full:.3f})")
        latest = services.checkpoints.latest()
        plain, without = timed(lambda: audit.verify(app))
        compared, with_ = timed(lambda: audit.verify(app, checkpoint=latest))
        assert plain.ok and compared.ok and second.number == 2
        print(f"verify: {without:.2f} s without a checkpoint, {with_:.2f} s compared with checkpoint 2 "
              f"(ratio {with_ / without:.2f}, goal ≈ 1)")
        services.projections.catch_up()
        with services.snapshot() as conn:
            _, seconds = timed(lambda: kpis.compute(conn, date(2026, 2, 1), date(2026, 3, 2)))
        print(f"KPI report over {receivables:,} receivables (exact sums): {seconds * 1000:.0f} ms")
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--receivables", type=int, default=10_000)
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument("--more", type=int, default=200)
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            run(f"sqlite:///{folder}/bench.db", args.receivables, args.payments, args.more)
    else:
        reason = c.postgres_reason()
        if reason:
            sys.exit(reason)
        with c.pg_schema() as schema:
            run(f"{c.DEFAULT_PG_URL}?schema={schema}", args.receivables, args.payments, args.more)


if __name__ == "__main__":
    main()
