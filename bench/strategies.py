"""Strategies (issue 13, ADR 0050/0051): what they cost on the write path, a policy adoption's
re-plan, and a simulation.

    .venv/bin/python bench/strategies.py                        # 2,000 receivables, SQLite
    .venv/bin/python bench/strategies.py --receivables 5000 --db postgres

For each database, twice — under a policy without strategies, then under one with three
strategies matched on the customer's segment:

1. `--receivables` receivables issued one by one through `Collections.issue_receivable`
   (customers rotate over three segments), then one partial payment each through
   `Collections.execute` — commands a second (the strategy costs one customer read per
   command and a cached effective policy);
2. (strategies only) a new policy version that changes one strategy's escalation: the
   re-plan `adopt_policy` does (one `Replanned` per receivable of that strategy, the others
   compared and skipped) — receivables re-planned a second; then a version that changes
   nothing the receivables follow — the whole comparison, nothing recorded;
3. (strategies only) `simulate_policy` for one customer with `--receivables / customers`
   open receivables — milliseconds.

Goals: strategies cost at most 15% of the command rate; a re-plan at least 200 receivables
a second on SQLite (a policy change is rare; this bounds how long `PUT /policy` takes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import date  # noqa: E402

from _common import DEFAULT_PG_URL, DUE_ON, ISSUED_ON, machine, pg_schema, postgres_reason  # noqa: E402

from collections_es.adapters.policy_file import bundled_policy_text, parse_policy  # noqa: E402
from collections_es.application.clock import SystemClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.policy import CollectionPolicy  # noqa: E402
from collections_es.domain.receivable import receivable_id  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402

SERVICE = Actor("bench", "service")
SUPERVISOR = Actor("bench-supervisor", "supervisor")
SEGMENTS = ("smb", "enterprise", "public")
GOAL_OVERHEAD = 0.15
GOAL_REPLAN = 200.0


def policy(version: str, with_strategies: bool, smb_escalation: int = 10) -> CollectionPolicy:
    document = parse_policy(bundled_policy_text()).model_dump(mode="json")
    strategies = [
        {"id": "strict", "match": {"segments": ["smb"]}, "escalate_after_days": smb_escalation, "reminder_lead_days": 3},
        {"id": "gentle", "match": {"segments": ["enterprise"]}, "escalate_after_days": 45},
        {"id": "public", "match": {"segments": ["public"]}, "contact": {"max_attempts_per_receivable": 2}},
    ]
    return CollectionPolicy.model_validate({**document, "version": version, "strategies": strategies if with_strategies else []})


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def run(url: str, args: argparse.Namespace, with_strategies: bool) -> float:
    services = build(Settings(DATABASE_URL=url), clock=SystemClock())
    app = services.app
    label = "with strategies" if with_strategies else "no strategies"
    try:
        app.adopt_policy(Request(SUPERVISOR), policy("bench-1", with_strategies))
        for n in range(args.customers):
            app.register_customer(
                Request(SERVICE), customer_id=f"C-{n:04d}", name=f"Customer {n}", timezone="Asia/Shanghai", tier="B",
                preferred_channel="email", contacts={"email": f"ap{n}@example.com"}, segment=SEGMENTS[n % len(SEGMENTS)],
            )
        started = time.perf_counter()
        for n in range(args.receivables):
            app.issue_receivable(
                Request(SERVICE), invoice_number=f"INV-{n:07d}", customer_id=f"C-{n % args.customers:04d}",
                amount="1000.00", currency="CNY", issued_on=date.fromisoformat(ISSUED_ON), due_on=date.fromisoformat(DUE_ON),
            )
        issued = time.perf_counter() - started
        started = time.perf_counter()
        for n in range(args.receivables):
            app.execute(
                Request(SERVICE), receivable_id(f"INV-{n:07d}"), "record_payment",
                amount="10.00", method="bank_transfer", paid_on=date.fromisoformat(ISSUED_ON), reference=f"P-{n}",
            )
        paid = time.perf_counter() - started
        commands = 2 * args.receivables / (issued + paid)
        print(f"  {label}: issue {rate(args.receivables, issued):,.0f}/s, record_payment {rate(args.receivables, paid):,.0f}/s"
              f" ({commands:,.0f} commands/s)")
        if with_strategies:
            services.read_models("receivables")
            events_before = app.recorder.max_notification_id()
            started = time.perf_counter()
            app.adopt_policy(Request(SUPERVISOR), policy("bench-2", True, smb_escalation=12))
            replan = time.perf_counter() - started
            replanned = app.recorder.max_notification_id() - events_before - 1  # less the adoption
            print(f"  re-plan on adoption: {replanned:,} of {args.receivables:,} receivables re-planned in {replan:.2f} s"
                  f" ({rate(replanned, replan):,.0f}/s; goal >= {GOAL_REPLAN:,.0f}/s)")
            started = time.perf_counter()
            app.adopt_policy(Request(SUPERVISOR), policy("bench-3", True, smb_escalation=12))
            compare = time.perf_counter() - started
            after = app.recorder.max_notification_id() - events_before - replanned - 2
            print(f"  adoption that changes nothing they follow: {compare:.2f} s over {args.receivables:,}, {after} re-planned")
            customer_receivables = args.receivables // args.customers
            started = time.perf_counter()
            result = app.simulate_policy(SUPERVISOR, policy("bench-4", True, smb_escalation=5), "C-0000")
            simulated = time.perf_counter() - started
            print(f"  simulate: {len(result.receivables)} receivables of one customer in {simulated * 1000:.0f} ms"
                  f" (~{customer_receivables} expected)")
        return commands
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--receivables", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    print(machine())
    targets = []
    if args.db in ("sqlite", "both"):
        targets.append("sqlite")
    if args.db in ("postgres", "both"):
        reason = postgres_reason(args.pg_url)
        if reason:
            print(f"postgres skipped: {reason}")
        else:
            targets.append("postgres")
    for target in targets:
        print(f"{target}:")
        rates = []
        for with_strategies in (False, True):
            if target == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    rates.append(run(f"sqlite:///{folder}/bench.db", args, with_strategies))
            else:
                with pg_schema(args.pg_url, "bench_strategies") as schema:
                    rates.append(run(f"{args.pg_url}?schema={schema}", args, with_strategies))
        overhead = 1 - rates[1] / rates[0]
        print(f"  strategies cost {overhead:.1%} of the command rate (goal <= {GOAL_OVERHEAD:.0%})")


if __name__ == "__main__":
    main()
