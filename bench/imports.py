"""Imports: receivables a second through `collections_es.imports` (issue 14: goal >= 500/s on SQLite).

    .venv/bin/python bench/imports.py                       # 10,000 receivables, SQLite and PostgreSQL
    .venv/bin/python bench/imports.py --receivables 50000 --db sqlite
    .venv/bin/python bench/imports.py --batch 1             # one transaction per line, for comparison

For each database: a throwaway store; a CSV of `--customers` customers imported first; then a
CSV of `--receivables` receivables (whole import: validation of every line, then the writes in
batches of `--batch` lines per transaction); then the same file again (everything `unchanged`);
and, for comparison, `--per-command` receivables issued one by one through
`Collections.issue_receivable` (the HTTP path without HTTP). Prints each rate beside the goal.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import DEFAULT_PG_URL, ISSUED_ON, DUE_ON, machine, pg_schema, postgres_reason  # noqa: E402

from collections_es.application.clock import SystemClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402
from collections_es.imports import Importer  # noqa: E402

GOAL = 500.0
ACTOR = Actor("import:bench.csv", "service")


def customers_csv(count: int) -> bytes:
    lines = ["customer_id,name,timezone,tier,contacts.email"]
    lines += [f"C-{n:05d},Customer {n},Asia/Shanghai,A,ap{n}@example.com" for n in range(count)]
    return ("\n".join(lines) + "\n").encode()


def receivables_csv(count: int, customers: int, prefix: str = "INV") -> bytes:
    lines = ["invoice_number,customer_id,amount,currency,issued_on,due_on,collector"]
    lines += [
        f"{prefix}-{n:07d},C-{n % customers:05d},{100 + n % 900}.50,CNY,{ISSUED_ON},{DUE_ON},collector-{n % 3}"
        for n in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def run(url: str, args: argparse.Namespace) -> None:
    services = build(Settings(DATABASE_URL=url), clock=SystemClock())
    try:
        Importer(services.app, ACTOR, "customers")(io.BytesIO(customers_csv(args.customers)))
        data = receivables_csv(args.receivables, args.customers)
        started = time.perf_counter()
        summary = Importer(services.app, ACTOR, "receivables", batch=args.batch, max_lines=10**7)(io.BytesIO(data))
        seconds = time.perf_counter() - started
        assert summary.ok and summary.created == args.receivables, summary.text()
        rate = args.receivables / seconds
        print(f"  import        {args.receivables:>7} receivables in {seconds:6.2f} s: {rate:8,.0f}/s  "
              f"(goal {GOAL:,.0f}/s: {'met' if rate >= GOAL else 'NOT met'}; batch {args.batch})")

        started = time.perf_counter()
        again = Importer(services.app, ACTOR, "receivables", max_lines=10**7)(io.BytesIO(data))
        seconds = time.perf_counter() - started
        assert again.ok and again.unchanged == args.receivables, again.text()
        print(f"  same again    {args.receivables:>7} unchanged   in {seconds:6.2f} s: {args.receivables / seconds:8,.0f}/s")

        if args.per_command:
            started = time.perf_counter()
            for n in range(args.per_command):
                services.app.issue_receivable(
                    Request(ACTOR), invoice_number=f"ONE-{n:07d}", customer_id=f"C-{n % args.customers:05d}",
                    amount="100.50", currency="CNY", issued_on=_day(ISSUED_ON), due_on=_day(DUE_ON), collector=None,
                )
            seconds = time.perf_counter() - started
            print(f"  per command   {args.per_command:>7} receivables in {seconds:6.2f} s: {args.per_command / seconds:8,.0f}/s"
                  "  (issue_receivable one by one, for comparison)")
    finally:
        services.close()


def _day(text: str):  # noqa: ANN202
    from datetime import date

    return date.fromisoformat(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivables", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--batch", type=int, default=250, help="lines per transaction")
    parser.add_argument("--per-command", type=int, default=1_000, help="receivables issued one by one (0: skip)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    print(machine())
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            print("SQLite")
            run(f"sqlite:///{folder}/bench.db", args)
    if args.db in ("postgres", "both"):
        reason = postgres_reason(args.pg_url)
        if reason:
            print(f"PostgreSQL skipped: {reason}")
            return
        with pg_schema(args.pg_url, "bench_import") as schema:
            print("PostgreSQL")
            run(f"{args.pg_url}?schema={schema}", args)


if __name__ == "__main__":
    main()
