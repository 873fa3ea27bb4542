"""Aging checkpoints (ADR 0066): the report as of a date in a checkpointed month, read from
that month's checkpoint less the changes after the date, equals the full computation (all
changes less those dated after it), for every dimension and date of a realistic history
that the projection followed in batches of varying size, back-dated payments included."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa

from collections_es.application.clock import FixedClock
from projections import aging

from ..conftest import START, make_services
from .projection_history import generate

SEED = 20261201


def test_aging_read_from_monthly_checkpoints_equals_the_full_computation_on_every_date(database_url):
    services = make_services(database_url, FixedClock(START))
    try:
        runner = services.projections
        rng = random.Random(SEED)
        generate(services.app, 80, seed=SEED, save_every=90,
                 after_save=lambda _n: runner.catch_up(["aging"], batch_size=rng.choice((37, 200, 900))))
        runner.catch_up(["aging"])
        with services.snapshot() as conn:
            months = sorted(conn.execute(sa.select(aging.checkpointed.c.month)).scalars())
            first, last = conn.execute(
                sa.select(sa.func.min(aging.changes.c.effective_on), sa.func.max(aging.changes.c.effective_on))
            ).one()
            assert len(months) >= 4, months
            assert months == aging._months(aging.month_of(first), aging.month_of(last) - timedelta(days=1))
            assert conn.execute(sa.select(sa.func.count()).select_from(aging.checkpoints)).scalar() > 0
            checked = 0
            day = first - timedelta(days=3)
            while day <= last + timedelta(days=3):
                for dim in aging.DIMENSIONS:
                    for by in ("due_on", "bucket"):
                        expected = aging.balances_from_totals(conn, dim, day, by=by)
                        assert aging.balances_as_of(conn, dim, day, by=by) == expected, (dim, by, day)
                        checked += 1
                currency = rng.choice(("CNY", "USD", "JPY"))
                assert aging.balances_as_of(conn, "customer", day, currency=currency, by="bucket") == \
                    aging.balances_from_totals(conn, "customer", day, currency=currency, by="bucket")
                day += timedelta(days=rng.choice((9, 17, 31)))
            assert checked > 30
    finally:
        services.close()
