"""The worklist's score computed in SQL equals `projections.worklist.priority`'s, on SQLite
and PostgreSQL (ADR 0048): the same float before rounding for every listed item, the same
items listed, and a limited list is the first items of the whole list in today's order.

Two portfolios: a generated one written straight into the read model (several hundred
receivables in eight time zones, every open state, promises and installment plans
partly paid, broken promises past the cap, disputes, tiers, contacts around the
seven-day mark, balances from below one unit to hundreds of billions, boundaries of the
legal-referral and the 365-day cap), read at instants around midnight in several zones;
and a realistic history recorded through the aggregates and projected
(tests/integration/projection_history.py), whose kept facts are the projection's own.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.policy_file import load_policy
from collections_es.application.clock import FixedClock
from collections_es.application.service import Request
from collections_es.domain.trail import Actor
from projections import worklist as wl
from projections.rows import to_minor
from projections.worklist import derive, priority, tiers, worklist, zones

from ..conftest import START, make_services
from .projection_history import generate

POLICY = load_policy(None)
ZONES = (
    "Asia/Shanghai", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago",
    "Asia/Kolkata", "Australia/Lord_Howe", "Europe/London", "America/St_Johns",
)
OPEN_STATES = ("issued", "reminded", "due", "following_up", "promised", "overdue_escalated", "legal")
TIERS = ("A", "B", "C", None)  # None: a customer the read model has no tier for
# Instants around midnight in some zone, and the ordinary middle of a day.
NOWS = (
    datetime(2026, 6, 15, 2, 0, tzinfo=UTC),
    datetime(2026, 6, 15, 15, 59, 59, tzinfo=UTC),  # 23:59:59 in Shanghai
    datetime(2026, 6, 15, 16, 0, tzinfo=UTC),  # midnight in Shanghai
    datetime(2026, 6, 16, 10, 0, tzinfo=UTC),  # midnight at UTC+14, 23:00 at UTC-11
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
)
TODAY = date(2026, 6, 15)


def _amount(rng: random.Random) -> tuple[str, int]:
    """A currency and a balance in minor units, from under one unit to about 10^11 units."""
    currency = rng.choice(("CNY", "USD", "JPY"))
    exponent = rng.uniform(-2.5, 11.5)
    major = 10 ** exponent
    minor = max(1, int(major * (1 if currency == "JPY" else 100)))
    if rng.random() < 0.05:
        minor = rng.choice((1, 99, 100, 101, 10**6, 10**8))  # exactly a power of ten, or around one unit
    return currency, minor


def generated_portfolio(count: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """`count` read-model rows (with their kept facts derived as the projection does), the
    customers' tiers and the time zones."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    customers = [{"aggregate_id": f"agg-{i}", "customer_id": f"C-{i}", "tier": tier}
                 for i, tier in enumerate(TIERS) if tier is not None]
    tier_of = {f"C-{i}": tier for i, tier in enumerate(TIERS)}
    for i in range(count):
        currency, balance = _amount(rng)
        # Due dates from two years before today to two weeks after; some at the 365-day and
        # the legal-referral marks (90 days by default) exactly.
        offset = rng.choice((rng.randrange(-14, 730), rng.randrange(-3, 4),
                             rng.choice((89, 90, 91, 364, 365, 366))))
        due_on = TODAY - timedelta(days=offset)
        paid = rng.choice((0, 0, balance // 3))
        commitment, before = None, 0
        if rng.random() < 0.4:
            before = rng.choice((0, paid))
            dates = sorted(TODAY + timedelta(days=rng.randrange(-20, 20)) for _ in range(rng.choice((1, 1, 3))))
            commitment = json.dumps([[d.isoformat(), max(1, balance // 4)] for d in dates])
        last_contact = None
        if rng.random() < 0.7:
            last_contact = datetime(2026, 6, 15, 2, 0) - timedelta(days=rng.choice((0, 1, 6, 7, 8, 30)),
                                                                    hours=rng.randrange(0, 24),
                                                                    minutes=rng.randrange(60))
        closed = rng.random() < 0.05
        rows.append({
            "id": f"r-{i:05d}",
            "invoice_number": f"INV-{i:05d}",
            "customer_id": f"C-{rng.randrange(len(TIERS))}",
            "collector": rng.choice(("collector-1", "collector-2", None)),
            "state": "settled" if closed else rng.choice(OPEN_STATES),
            "open": not closed,
            "currency": currency,
            "timezone": rng.choice(ZONES),
            "due_on": due_on,
            "paid": paid,
            "balance": balance,
            "commitment": commitment,
            "commitment_paid_before": before,
            "broken_promises": rng.choice((0, 0, 0, 1, 2, 3, 5)),
            "last_contact_at": last_contact,
            "disputed": rng.random() < 0.15,
            "version": 1,
        })
        derive(rows[-1])
        rows[-1]["tier"] = tier_of[rows[-1]["customer_id"]]  # as the projection carries it
    return rows, customers, {row["timezone"] for row in rows}


def equal_scores(rows: list[dict[str, Any]], tier: dict[str, str], sql: dict[str, float], now: datetime) -> None:
    """SQL lists exactly the rows priority scores, with the same float before rounding."""
    expected = {}
    for row in rows:
        if not row["open"]:
            continue
        scored = priority(row, tier.get(row["customer_id"]), now, POLICY)
        if scored is not None:
            expected[row["id"]] = scored
    assert set(sql) == set(expected), (sorted(set(sql) - set(expected))[:5], sorted(set(expected) - set(sql))[:5])
    different = {rid: (sql[rid], s.unrounded) for rid, s in expected.items() if sql[rid] != s.unrounded}
    assert not different, list(different.items())[:5]
    assert all(round(sql[rid], 2) == s.score for rid, s in expected.items())


def same_top_items(conn: sa.Connection, collector: str | None, now: datetime, limits: tuple[int, ...]) -> int:
    """items_for with a limit gives the first items of the whole list sorted in today's order."""
    everything = wl.items_for(conn, collector=collector, now=now, policy=POLICY)
    assert everything == sorted(everything, key=lambda r: (-r["priority"], -r["balance"], r["due_on"], r["id"]))
    for limit in limits:
        limited = wl.items_for(conn, collector=collector, now=now, policy=POLICY, limit=limit)
        assert [r["id"] for r in limited] == [r["id"] for r in everything[:limit]], (collector, now, limit)
        assert limited == everything[:limit]
    return len(everything)


def test_sql_scores_equal_the_python_scores_on_a_generated_portfolio(database_url):
    services = make_services(database_url, FixedClock(START))
    try:
        rows, customers, used = generated_portfolio(800, seed=48)
        with services.engine.begin() as conn:
            conn.execute(worklist.insert(), rows)
            conn.execute(tiers.insert(), customers)
            conn.execute(zones.insert(), [{"timezone": z} for z in sorted(used)])
        tier = {c["customer_id"]: c["tier"] for c in customers}
        amounts = [r["amount_points"] for r in rows]
        assert min(amounts) == 0.0 and max(amounts) > 110, "balances from under one unit to over 10^11 units"
        listed = []
        with services.engine.connect() as conn:
            for now in NOWS:
                sql = wl.sql_scores(conn, collector=None, now=now, policy=POLICY)
                equal_scores(rows, tier, sql, now)
                listed.append(len(sql))
                one = wl.sql_scores(conn, collector="collector-1", now=now, policy=POLICY)
                collector_of = {r["id"]: r["collector"] for r in rows}
                assert one == {rid: s for rid, s in sql.items() if collector_of[rid] == "collector-1"}
            assert 200 < listed[0] < 760, listed  # some closed or not yet due, most listed
            for now in NOWS[:3]:
                assert same_top_items(conn, None, now, (1, 7, 50, 51, 100, 1000)) > 200
                same_top_items(conn, "collector-2", now, (1, 50, 51))
    finally:
        services.close()


def test_a_limit_inside_a_run_of_equal_rounded_scores_gives_the_same_items_as_sorting_everything(database_url):
    """Sixty items whose scores round to the same hundredth while their unrounded scores,
    which the database orders by, run against the balance that breaks the tie."""
    services = make_services(database_url, FixedClock(START))
    try:
        rows = []
        for i in range(60):
            days = 10 + i  # more days past due, a smaller balance: the score stays at ~ 150.003
            major = 10 ** ((150.003 - 30 - 20 - days / 3) / 10)
            row = {"id": f"t-{i:03d}", "invoice_number": f"T-{i}", "customer_id": "C-A", "collector": "collector-1",
                   "state": "following_up", "open": True, "currency": "CNY", "timezone": "Asia/Shanghai",
                   "due_on": TODAY - timedelta(days=days), "paid": 0, "balance": to_minor(Decimal(f"{major:.2f}"), "CNY"),
                   "commitment": None, "commitment_paid_before": 0, "broken_promises": 0, "last_contact_at": None,
                   "disputed": False, "version": 1, "tier": "A"}
            derive(row)
            rows.append(row)
        with services.engine.begin() as conn:
            conn.execute(worklist.insert(), rows)
            conn.execute(tiers.insert(), [{"aggregate_id": "agg-a", "customer_id": "C-A", "tier": "A"}])
            conn.execute(zones.insert(), [{"timezone": "Asia/Shanghai"}])
        now = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)
        with services.engine.connect() as conn:
            equal_scores(rows, {"C-A": "A"}, wl.sql_scores(conn, collector=None, now=now, policy=POLICY), now)
            everything = wl.items_for(conn, collector=None, now=now, policy=POLICY)
            assert {r["priority"] for r in everything} == {150.0}
            by_sql = [rid for rid, _ in sorted(wl.sql_scores(conn, collector=None, now=now, policy=POLICY).items(),
                                               key=lambda kv: (-kv[1], kv[0]))]
            assert by_sql != [r["id"] for r in everything], "the database's order differs from the order shown"
            same_top_items(conn, None, now, (1, 5, 10, 30, 59, 60))
    finally:
        services.close()


def test_sql_scores_equal_the_python_scores_over_a_projected_history(database_url):
    """The facts the projection keeps (day numbers, next commitment, last contact's day, the
    amount's points) give in SQL the scores priority gives from the row's own columns."""
    services = make_services(database_url, FixedClock(START))
    try:
        generate(services.app, 300, seed=20261201, save_every=400)
        services.projections.catch_up(["worklist"])
        with services.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(worklist))]
            tier = dict(conn.execute(sa.select(tiers.c.customer_id, tiers.c.tier)).all())
            for row in rows:  # the kept facts are those derive() gives from the row's own columns
                kept = {k: row[k] for k in ("due_day", "commitment_day", "last_contact_day", "amount_points")}
                derive(row)
                assert kept == {k: row[k] for k in kept}, row["id"]
                assert row["tier"] == tier.get(row["customer_id"]), row["id"]  # the customer's tier, carried
            assert any(r["commitment_day"] for r in rows if r["open"]) and any(r["broken_promises"] for r in rows)
            for now in (START + timedelta(days=d, hours=h) for d in (20, 60, 95, 180, 400) for h in (0, 15)):
                sql = wl.sql_scores(conn, collector=None, now=now, policy=POLICY)
                equal_scores(rows, tier, sql, now)
                same_top_items(conn, "collector-1", now, (1, 10, 51))
            assert len(sql) > 20
    finally:
        services.close()


def test_a_rebuild_brings_an_earlier_versions_worklist_table_to_the_new_columns(database_url):
    """A read model made before the scoring columns existed: the runner names it at start,
    and `rebuild worklist` makes its tables again and fills them."""
    services = make_services(database_url, FixedClock(START))
    try:
        generate(services.app, 30, seed=3, save_every=400)
        services.projections.catch_up(["worklist"])
        with services.engine.connect() as conn:
            before = sorted(conn.execute(sa.select(worklist)).all())
        with services.engine.begin() as conn:  # the table as an earlier version made it
            conn.execute(sa.text("DROP TABLE rm_worklist"))
            new = ("due_day", "commitment_day", "last_contact_day", "amount_points", "tier")
            kept = [c for c in worklist.columns if c.name not in new]
            old = sa.Table("rm_worklist", sa.MetaData(),
                           *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in kept])
            old.create(conn)
    finally:
        services.close()
    again = make_services(database_url, FixedClock(START))
    try:
        assert set(again.projections.outdated) == {"worklist"}
        assert "rm_worklist.amount_points" in again.projections.outdated["worklist"]
        again.projections.rebuild("worklist")
        assert again.projections.outdated == {}
        with again.engine.connect() as conn:
            assert sorted(conn.execute(sa.select(worklist)).all()) == before
            names = {i["name"] for i in sa.inspect(conn).get_indexes("rm_worklist")}
        assert "ix_rm_worklist_scoring" in names
    finally:
        again.close()


def test_a_row_carries_its_customers_tier_through_registration_and_a_change(database_url):
    """The tier is kept on each row (no join when reading): issued with the customer in one
    batch, then re-tiered by a later batch, and the same after a rebuild."""
    services = make_services(database_url, FixedClock(START))
    try:
        app, runner = services.app, services.projections
        service, supervisor = Actor("erp", "service"), Actor("supervisor-1", "supervisor")
        app.register_customer(Request(service), customer_id="C-1", name="ACME", timezone="Asia/Shanghai", tier="B",
                              preferred_channel="email", contacts={"email": "ap@acme.example.com"})
        for number in ("INV-1", "INV-2"):
            app.issue_receivable(Request(service), invoice_number=number, customer_id="C-1", amount="100.00",
                                 currency="CNY", issued_on=date(2026, 3, 2), due_on=date(2026, 4, 1), collector="collector-1")
        runner.catch_up(["worklist"])

        def tiers_kept() -> list[tuple[str, str | None]]:
            with services.engine.connect() as conn:
                return sorted(conn.execute(sa.select(worklist.c.invoice_number, worklist.c.tier)).all())

        assert tiers_kept() == [("INV-1", "B"), ("INV-2", "B")]
        app.update_customer(Request(supervisor), "C-1", tier="A")
        runner.catch_up(["worklist"])
        assert tiers_kept() == [("INV-1", "A"), ("INV-2", "A")]
        runner.rebuild("worklist", batch_size=2)
        assert tiers_kept() == [("INV-1", "A"), ("INV-2", "A")]
    finally:
        services.close()
