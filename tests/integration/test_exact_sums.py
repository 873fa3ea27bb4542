"""Sums in read models cannot overflow (issue 16, ADR 0060): 940 receivables of 10^12 CLF
(four minor digits: 10^16 minor units each) add up to 9.4 × 10^18 minor units, beyond a
64-bit integer. Before, the aging table's bigint overflowed on PostgreSQL (the projection
stuck) and SQLite's sum() made the KPI report answer 500. Every figure must be exact."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from ..conftest import make_services
from .conftest import Api

COUNT = 940
AMOUNT = "1000000000000"  # the largest amount the API takes
TOTAL = Decimal(AMOUNT) * COUNT  # 9.4 × 10^14 CLF = 9.4 × 10^18 minor units
CUSTOMER = {"customer_id": "C-CL-1", "name": "Cobre Andino S.A.", "timezone": "America/Santiago", "tier": "A",
            "preferred_channel": "email", "contacts": {"email": "cxp@example.cl"}}


@pytest.fixture
def big(database_url: str, clock) -> Iterator[Api]:
    services = make_services(database_url, clock)
    api = Api(services)
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    lines = ["invoice_number,customer_id,amount,currency,issued_on,due_on,collector"]
    lines += [f"CL-{i:04d},C-CL-1,{AMOUNT},CLF,2026-02-02,2026-03-01,collector-1" for i in range(COUNT)]
    imported = api.as_("supervisor").post(
        "/imports/receivables", content="\n".join(lines).encode(), headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    yield api
    services.close()


def clf(value: str) -> Decimal:
    return Decimal(value)


def test_aging_and_kpis_over_more_than_a_bigint_of_minor_units_are_exact(big: Api) -> None:
    supervisor = big.as_("supervisor")
    paid = big.as_("collector").post(
        "/receivables/CL-0000/record-payment",
        json={"amount": "0.0001", "method": "bank_transfer", "paid_on": "2026-03-01", "reference": "TX-1"},
    )
    assert paid.status_code == 200, paid.text
    for group_by in ("currency", "customer", "collector"):
        aging = supervisor.get("/reports/aging", params={"as_of": "2026-03-02", "group_by": group_by})
        assert aging.status_code == 200, aging.text
        assert aging.headers.get("X-Projection-Lag") is None
        assert [clf(t["balance"]) for t in aging.json()["totals"]] == [TOTAL - Decimal("0.0001")], group_by
        assert [g["count"] for g in aging.json()["groups"]] == [COUNT]
    before = supervisor.get("/reports/aging", params={"as_of": "2026-02-28"})  # the payment subtracted back
    assert clf(before.json()["totals"][0]["balance"]) == TOTAL
    assert [b["bucket"] for b in before.json()["buckets"] if clf(b["balance"])] == ["current"]

    kpis = supervisor.get("/reports/kpis", params={"from": "2026-02-01", "to": "2026-03-02"})
    assert kpis.status_code == 200, kpis.text
    overall = kpis.json()["overall"]
    assert [block["currency"] for block in overall] == ["CLF"]
    assert clf(overall[0]["credit_sales"]) == TOTAL

    ready = big.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_aging_tables_made_with_64_bit_sums_are_outdated_and_a_rebuild_makes_them_exact(sqlite_url: str, clock) -> None:
    import sqlalchemy as sa

    from projections import aging

    old = sa.MetaData()
    engine = sa.create_engine(sqlite_url)
    for table in (aging.totals, aging.changes):
        columns = [sa.Column(c.name, sa.BigInteger if c.name == "balance" else c.type, primary_key=c.primary_key)
                   for c in table.columns]
        sa.Table(table.name, old, *columns)
    old.create_all(engine)
    engine.dispose()
    services = make_services(sqlite_url, clock)
    try:
        assert "rm_aging_totals.balance" in services.projections.outdated["aging"]
        services.projections.rebuild("aging")
        assert services.projections.outdated == {}
        with services.engine.connect() as conn:
            types = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("rm_aging_totals")}
        assert types["balance"] == "TEXT"
    finally:
        services.close()
