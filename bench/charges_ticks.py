"""Ticking every minute for a day accrues no more charges than ticking once (ADR 0053).

    .venv/bin/python bench/charges_ticks.py                  # SQLite, 1,440 ticks (one a minute for a day)
    .venv/bin/python bench/charges_ticks.py --db postgres    # on a throwaway PostgreSQL schema
    .venv/bin/python bench/charges_ticks.py --minutes 60     # a shorter run

One receivable (CNY 1,200.50 due 1 April 2026, Shanghai) under a policy charging 3.65% a year
and a 50.00 late fee 10 days past due. The scheduler catches up to 30 April 12:00 local, then
ticks once a minute for `--minutes` minutes (across the month's end at midnight) in one store
and once at the end in another. It prints the seconds the ticks took, the milliseconds per
tick, and the accruals each store recorded: the goal is the same accruals in both, the month's
end once. The test suite moves the sandbox clock the same way on SQLite
(tests/integration/test_charges.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402

from collections_es.adapters.policy_file import load_policy  # noqa: E402
from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.application.service import Request  # noqa: E402
from collections_es.bootstrap import build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.policy import ChargesPolicy  # noqa: E402
from collections_es.domain.receivable import Receivable, receivable_id  # noqa: E402
from collections_es.domain.trail import Actor  # noqa: E402

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
FROM = datetime(2026, 4, 30, 4, 0, tzinfo=UTC)  # 30 April 12:00 in Shanghai
SUPERVISOR = Request(Actor("bench-supervisor", "supervisor"))
SERVICE = Request(Actor("bench-service", "service"))
UNLIMITED = {"COLLECTIONS_RATE_LIMIT_BURST": 1_000_000, "COLLECTIONS_AUTH_FAILURE_BURST": 1_000_000}


def store(url: str):  # noqa: ANN201 - the composition root's Services
    services = build(Settings(DATABASE_URL=url, **UNLIMITED), clock=FixedClock(START))
    policy = load_policy(None).model_copy(
        update={
            "version": "bench-charges",
            "charges": ChargesPolicy(interest_rate_per_annum=Decimal("0.0365"), late_fee_amount=Decimal("50"), late_fee_after_days=10),
        }
    )
    services.app.adopt_policy(SUPERVISOR, policy)
    services.app.register_customer(
        SERVICE, customer_id="C-B", name="Bench Co", timezone="Asia/Shanghai", tier="A", preferred_channel="email",
        contacts={"email": "ap@bench.example.com"},
    )
    services.app.issue_receivable(
        SERVICE, invoice_number="INV-B-1", customer_id="C-B", amount="1200.50", currency="CNY",
        issued_on=date(2026, 3, 2), due_on=date(2026, 4, 1),
    )
    services.clock.at = FROM
    services.scheduler.tick(FROM)
    return services


def accruals(services) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    return [
        (str(e.since), str(e.through), f"{e.interest:f}", f"{e.fee:f}")
        for e in services.app.events.get(receivable_id("INV-B-1"))
        if isinstance(e, Receivable.ChargesAccrued)
    ]


def run(url_every: str, url_once: str, minutes: int) -> None:
    every, once = store(url_every), store(url_once)
    try:
        end = FROM + timedelta(minutes=minutes)
        started = time.perf_counter()
        for m in range(1, minutes + 1):
            moment = FROM + timedelta(minutes=m)
            every.clock.at = moment
            every.scheduler.tick(moment)
        seconds = time.perf_counter() - started
        once.clock.at = end
        once.scheduler.tick(end)
        a, b = accruals(every), accruals(once)
        print(f"  {minutes} ticks: {seconds:.2f} s, {1000 * seconds / minutes:.1f} ms a tick")
        print(f"  accruals ticking every minute: {a}")
        print(f"  accruals ticking once:         {b}")
        print(f"  goal: the same accruals in both -> {'met' if a == b else 'MISSED'}")
    finally:
        every.close()
        once.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    args = parser.parse_args()
    print(f"charges_ticks ({args.db})")
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            run(f"sqlite:///{d}/every.db", f"sqlite:///{d}/once.db", args.minutes)
        return
    reason = c.postgres_reason(args.pg_url)
    if reason is not None:
        print(f"  skipped: PostgreSQL unavailable ({reason})")
        return
    with c.pg_schema(args.pg_url, "charges_a") as a, c.pg_schema(args.pg_url, "charges_b") as b:
        run(f"{args.pg_url}?schema={a}", f"{args.pg_url}?schema={b}", args.minutes)


if __name__ == "__main__":
    main()
