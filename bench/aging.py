"""Does the aging report cost the same over 100,000 receivables as over 1,000?

    .venv/bin/python bench/aging.py                              # SQLite, 1,000 then 100,000 receivables
    .venv/bin/python bench/aging.py --db postgres                # the same on a throwaway PostgreSQL schema
    .venv/bin/python bench/aging.py --sizes 1000 10000 --repeat 50

For each size N the script makes a fresh store and records N receivables through the
aggregates' command methods and `app.save` (in chunks): the same five customers (Shanghai
and Los Angeles), four collectors, CNY/USD/JPY, and the same span of issue dates
(`--span-days`, 365 by default) at every size. About half get a payment (partial or in
full, paid some days after issue), 8 % are reassigned to another collector and 10 % are
disputed and resolved with a lower amount: about 1.8 events per receivable. The aging
projection is then caught up over that log (`runner.catch_up(["aging"])`).

It then times, median of `--repeat` calls each, `projections.aging.report(conn, as_of,
group_by=...)` for group_by currency, customer and collector, as of "today" (the end of the
span, after every change) and as of 90 days before; and the same through HTTP
(`GET /reports/aging`, FastAPI's TestClient over the real app, with an API key), which adds
authentication, the read-your-writes check and JSON. It prints each figure per size and
the ratios largest ÷ smallest; the goal is ≤ 1.5 for the report served from the read model.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from collections_es.application.clock import FixedClock  # noqa: E402
from collections_es.bootstrap import Services, build  # noqa: E402
from collections_es.config import Settings  # noqa: E402
from collections_es.domain.customer import Customer  # noqa: E402
from collections_es.domain.money import minor_units  # noqa: E402
from collections_es.domain.receivable import Receivable  # noqa: E402
from collections_es.domain.trail import Actor, Context  # noqa: E402
from projections import aging  # noqa: E402
from tests.integration.projection_history import COLLECTORS, CUSTOMERS, SERVICE, SUPERVISORS  # noqa: E402

START = datetime(2025, 1, 6, 1, 0, tzinfo=UTC)
TARGET = 1.5
GROUPS = ("currency", "customer", "collector")


def _moment(day: date, tz: str, rng: random.Random) -> datetime:
    local = datetime(day.year, day.month, day.day, rng.choice((9, 10, 11, 14, 15, 16)), rng.randrange(60), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def record(services: Services, count: int, span_days: int, seed: int) -> tuple[int, date]:
    """`count` receivables over `span_days` days of issue; returns (events, the last day of the data)."""
    app = services.app
    policy = app.policy()
    rng = random.Random(seed)
    end = START.date() + timedelta(days=span_days + 120)
    events = 0
    n = 0

    def ctx(actor: Actor, now: datetime) -> Context:
        nonlocal n
        n += 1
        return Context(actor, now, f"bench-{n}", policy)

    customers = []
    for i, (cid, name, tz, tier, channel, _) in enumerate(CUSTOMERS):
        customers.append(Customer.register(ctx(SERVICE, START - timedelta(days=1)), customer_id=cid, name=name, timezone=tz,
                                           tier=tier, preferred_channel=channel, contacts={"email": f"ap@{i}.example.com"}))
    app.save(*customers)
    events += len(customers)
    chunk: list[Receivable] = []
    for i in range(count):
        cid, _, tz, _, _, currencies = rng.choice(CUSTOMERS)
        currency = rng.choice(currencies)
        units = minor_units(currency)
        quantum = Decimal(1).scaleb(-units)
        issued_on = START.date() + timedelta(days=rng.randrange(span_days))
        major = rng.choice((500, 5_000, 50_000)) * (150 if currency == "JPY" else 1)
        r = Receivable.issue(
            ctx(SERVICE, _moment(issued_on, tz, rng)), invoice_number=f"AG-{i:07d}", customer_id=cid, timezone=tz,
            amount=Decimal(rng.randrange(major // 10 * 10**units, major * 10**units)).scaleb(-units), currency=currency,
            issued_on=issued_on, due_on=issued_on + timedelta(days=rng.choice((30, 45, 60))),
            collector=None if rng.random() < 0.1 else rng.choice(COLLECTORS),
        )
        day = issued_on
        if rng.random() < 0.10:
            day += timedelta(days=rng.randrange(1, 20))
            r.raise_dispute(ctx(SERVICE, _moment(day, tz, rng)), reason="price disagreement")
            day += timedelta(days=rng.randrange(1, 20))
            lower = (r.amount * Decimal(rng.randrange(70, 96)) / 100).quantize(quantum, rounding=ROUND_DOWN)
            r.resolve_dispute(ctx(SUPERVISORS[1], _moment(day, tz, rng)), resolution="credit note", adjusted_amount=lower)
        if rng.random() < 0.08:
            day += timedelta(days=rng.randrange(1, 30))
            r.assign_collector(ctx(SUPERVISORS[0], _moment(day, tz, rng)),
                               collector=rng.choice([x for x in COLLECTORS if x != r.collector]))
        if rng.random() < 0.5:
            day += timedelta(days=rng.randrange(0, 90))
            full = rng.random() < 0.6
            amount = r.balance if full else max(quantum, (r.balance * Decimal("0.4")).quantize(quantum, rounding=ROUND_DOWN))
            r.record_payment(ctx(SERVICE, _moment(day, tz, rng)), amount=amount, method="bank_transfer",
                             paid_on=day - timedelta(days=rng.choice((0, 0, 2))), reference=f"PAY-{i}")
        events += len(r.pending_events)
        chunk.append(r)
        if len(chunk) >= 2_000:
            app.save(*chunk)
            chunk = []
    if chunk:
        app.save(*chunk)
    return events, end


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm the caches and the statement cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


@contextmanager
def store(db: str, pg_url: str) -> Iterator[str]:
    if db == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/aging.db"
    else:
        with c.pg_schema(pg_url, prefix="bench_aging") as schema:
            yield f"{pg_url}?schema={schema}"


def measure(url: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    clock = FixedClock(START)
    services = build(Settings(DATABASE_URL=url), clock=clock)
    try:
        started = time.perf_counter()
        events, end = record(services, size, args.span_days, args.seed)
        recorded_s = time.perf_counter() - started
        started = time.perf_counter()
        services.projections.catch_up(["aging"])
        projected_s = time.perf_counter() - started
        clock.at = datetime(end.year, end.month, end.day, 12, tzinfo=UTC)  # "today" for the HTTP route
        with services.engine.connect() as conn:
            rows = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in (aging.items, aging.totals, aging.changes)}
        out: dict[str, Any] = {"events": events, "recorded_s": recorded_s, "projected_s": projected_s, "rows": rows}
        as_ofs = {"today": end, "90 days back": end - timedelta(days=90)}
        for label, as_of in as_ofs.items():
            for group in GROUPS:
                def call(as_of: date = as_of, group: str = group) -> dict[str, Any]:
                    with services.engine.execution_options(read_only=True).connect() as conn:
                        return aging.report(conn, as_of, group_by=group)
                out[("report", label, group)] = median_ms(call, args.repeat)
                report = call()
                out[("open", label, group)] = sum(t["count"] for t in report["totals"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

            from collections_es.api.app import create_app
        token = services.keys.add("bench-supervisor", "supervisor", clock.now())
        client = TestClient(create_app(services))
        headers = {"Authorization": f"Bearer {token}"}
        for label, as_of in as_ofs.items():
            for group in GROUPS:
                params = {"group_by": group} | ({} if label == "today" else {"as_of": as_of.isoformat()})

                def get(params: dict[str, str] = params) -> Any:
                    response = client.get("/reports/aging", params=params, headers=headers)
                    assert response.status_code == 200, response.text
                    return response

                out[("http", label, group)] = median_ms(get, args.repeat)
        return out
    finally:
        services.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000], help="receivables")
    parser.add_argument("--span-days", type=int, default=365, help="days over which invoices are issued")
    parser.add_argument("--repeat", type=int, default=20, help="calls per figure (median)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.db == "postgres" and (reason := c.postgres_reason(args.pg_url)):
        print(f"PostgreSQL unavailable: {reason}")
        return 1

    print(f"aging benchmark on {args.db}: {c.machine()}; median of {args.repeat} calls")
    results: dict[int, dict[str, Any]] = {}
    for size in args.sizes:
        with store(args.db, args.pg_url) as url:
            results[size] = r = measure(url, size, args)
        rows = ", ".join(f"{k} {v:,}" for k, v in r["rows"].items())
        print(f"\n{size:,} receivables: {r['events']:,} events recorded in {r['recorded_s']:.1f} s, "
              f"aging projected in {r['projected_s']:.1f} s; rows: {rows}")
        print(f"  {'as of':<13} {'group by':<10} {'open':>8} {'report() ms':>12} {'HTTP ms':>9}")
        for label in ("today", "90 days back"):
            for group in GROUPS:
                print(f"  {label:<13} {group:<10} {r[('open', label, group)]:>8,} {r[('report', label, group)]:>12.2f} "
                      f"{r[('http', label, group)]:>9.2f}")
    small, large = min(results), max(results)
    print(f"\nratio {large:,} / {small:,} receivables (goal <= {TARGET} for report()):")
    worst = 0.0
    for label in ("today", "90 days back"):
        for group in GROUPS:
            ratio = results[large][("report", label, group)] / results[small][("report", label, group)]
            http = results[large][("http", label, group)] / results[small][("http", label, group)]
            worst = max(worst, ratio)
            print(f"  {label:<13} {group:<10} report() {ratio:>5.2f}   HTTP {http:>5.2f}")
    print(f"worst report() ratio {worst:.2f}: {'PASS' if worst <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
