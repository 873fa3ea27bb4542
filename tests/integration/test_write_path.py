"""The write path's shortcuts (ADR 0064, 0067): aggregates kept in memory are brought up to
date before each command, so a process never decides on a stale receivable; the PostgreSQL
pools are sized from one setting and the API works at the smallest size."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from collections_es.application.clock import FixedClock

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice


def pay(reference: str, amount: str = "100.00") -> dict[str, Any]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": reference}


def test_a_process_decides_on_the_latest_version_written_by_another_process(database_url):
    one = Api(make_services(database_url, FixedClock(START)))
    two = Api(make_services(database_url, FixedClock(START)))
    try:
        assert one.services.app.repository.cache is not None, "the aggregate cache is on by default"
        assert one.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        rid = one.as_("service").post("/receivables", json=invoice()).json()["id"]
        for i, api in enumerate([one, two, one, two, one]):
            response = api.as_("service").post(f"/receivables/{rid}/record-payment", json=pay(f"BANK-{i}"))
            assert response.status_code == 200, response.text
            assert response.json()["version"] == i + 2, "each command saw every earlier payment"
        # The last 700.50 settles it in either process; one cent more is refused in both.
        seen = [api.as_("service").get(f"/receivables/{rid}").json() for api in (one, two)]
        assert [Decimal(s["balance"]) for s in seen] == [Decimal("700.50")] * 2
        over = two.as_("service").post(f"/receivables/{rid}/record-payment", json=pay("BANK-X", "700.51"))
        assert over.status_code == 422, over.text
        done = one.as_("service").post(f"/receivables/{rid}/record-payment", json=pay("BANK-Y", "700.50"))
        assert done.status_code == 200 and done.json()["state"] == "settled", done.text
    finally:
        one.services.close()
        two.services.close()


def test_a_command_refused_in_memory_leaves_the_cached_receivable_as_it_was(services):
    api = Api(services)
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    rid = api.as_("service").post("/receivables", json=invoice()).json()["id"]
    assert api.as_("service").post(f"/receivables/{rid}/record-payment", json=pay("BANK-1", "9999.00")).status_code == 422
    after = api.as_("service").get(f"/receivables/{rid}").json()
    assert (after["version"], Decimal(after["balance"])) == (1, Decimal("1200.50"))


@pytest.mark.postgres
def test_the_pools_take_their_sizes_from_one_setting_and_serve_concurrent_commands_at_the_smallest(pg_url):
    services = make_services(pg_url, FixedClock(START), COLLECTIONS_DB_POOL_SIZE=4)
    try:
        store_pool = services.app.factory.datastore.pool  # type: ignore[attr-defined]
        assert (store_pool.min_size, store_pool.max_size) == (2, 2)
        assert (services.engine.pool.size(), services.engine.pool._max_overflow) == (2, 0)  # type: ignore[attr-defined]
        api = Api(services)
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        ids = [api.as_("service").post("/receivables", json=invoice(f"INV-{n}")).json()["id"] for n in range(4)]

        def work(n: int) -> list[int]:
            rid = ids[n % len(ids)]
            return [api.as_("service").post(f"/receivables/{rid}/record-payment", json=pay(f"B-{n}-{i}", "1.00")).status_code
                    for i in range(5)] + [api.as_("collector").get("/worklist").status_code]

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for result in pool.map(work, range(8)) for s in result]
        assert statuses.count(200) == len(statuses), statuses
        versions = sum(api.as_("service").get(f"/receivables/{rid}").json()["version"] - 1 for rid in ids)
        assert versions == 40, "every acknowledged payment recorded once"
    finally:
        services.close()
