"""A read model that cannot apply an event is stuck, not silently stopped (issue 16, ADR 0060):
the events before it are applied, the failure is recorded with its position, the other read
models go on, `/readyz` is not ready and `collections_projection_stuck` is 1 while it lasts,
reads answer at once with their lag, and an attempt that passes (after the fix) clears it."""

from __future__ import annotations

from typing import Any

import pytest

from projections.aging import Aging
from collections_es.domain.receivable import Receivable

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice
from .test_audit import cli  # noqa: F401 - a fixture

POISON = "TX-POISON"


def pay(api: Api, number: str, amount: str, reference: str) -> None:
    response = api.as_("collector").post(
        f"/receivables/{number}/record-payment",
        json={"amount": amount, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": reference},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Aging fails on one payment, wherever the batch holding it starts or ends."""
    real = Aging.apply_batch

    def apply_batch(self: Aging, conn: Any, batch: list[Any], prepared: Any) -> None:
        if any(isinstance(e, Receivable.PaymentRecorded) and e.reference == POISON for e, _ in batch):
            raise ValueError(f"cannot apply {POISON}; customer phone 13812345678")
        real(self, conn, batch, prepared)

    monkeypatch.setattr(Aging, "apply_batch", apply_batch)
    return {"undo": monkeypatch.undo}


def test_a_failing_event_sticks_its_read_model_only_and_is_reported_until_it_applies(api: Api, poisoned: dict) -> None:
    runner = api.services.projections
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    for number in ("INV-1", "INV-2", "INV-3"):
        assert api.as_("service").post("/receivables", json=invoice(number)).status_code == 201
    pay(api, "INV-1", "100.00", "TX-1")
    before_poison = runner.head()
    pay(api, "INV-2", "200.00", POISON)
    poison_position = runner.head()
    pay(api, "INV-3", "300.00", "TX-3")
    head = runner.head()

    runner.catch_up()  # one batch of everything: bisected down to the event at fault

    positions = runner.positions()
    assert positions["aging"] == before_poison  # what came before it is in
    assert all(p == head for n, p in positions.items() if n != "aging")  # the others went on
    stuck = runner.stuck()
    assert list(stuck) == ["aging"]
    assert stuck["aging"]["position"] == poison_position
    assert stuck["aging"]["event_type"] == "Receivable.PaymentRecorded"
    assert stuck["aging"]["error"].startswith("ValueError: cannot apply TX-POISON")
    assert "13812345678" not in stuck["aging"]["error"]  # redacted

    ready = api.client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "stuck" and body["stuck"] == ["aging"]
    assert body["projections"]["aging"]["lag"] == head - before_poison
    assert body["projections"]["aging"]["stuck"]["position"] == poison_position
    metrics = api.client.get("/metrics").text
    assert 'collections_projection_stuck{projection="aging"} 1.0' in metrics
    assert 'collections_projection_stuck{projection="worklist"} 0.0' in metrics
    assert "collections_projection_failures_total 1.0" in metrics

    # A read answers at once, stale and saying by how much; the first payment is in.
    aging = api.as_("supervisor").get("/reports/aging", params={"as_of": "2026-03-02"})
    assert aging.status_code == 200
    assert aging.headers["X-Projection-Lag"] == str(head - before_poison)
    assert aging.json()["totals"][0]["balance"] == "3501.50"  # 3 × 1200.50 − 100.00
    assert api.as_("supervisor").get("/receivables", params={"customer_id": "C-SH-1"}).headers.get("X-Projection-Lag") is None

    runner.catch_up()  # tried again: still failing, counted, still at the same place
    assert runner.stuck()["aging"]["attempts"] == 2 and runner.position("aging") == before_poison

    poisoned["undo"]()  # the fix is deployed
    runner.catch_up()
    assert runner.position("aging") == head and runner.stuck() == {}
    assert api.client.get("/readyz").json()["status"] == "ready"
    assert 'collections_projection_stuck{projection="aging"} 0.0' in api.client.get("/metrics").text
    aging = api.as_("supervisor").get("/reports/aging", params={"as_of": "2026-03-02"})
    assert aging.json()["totals"][0]["balance"] == "3001.50"


def test_a_rebuild_starts_a_stuck_read_model_again(sqlite_url: str, clock: Any, poisoned: dict, cli: Any) -> None:
    api = Api(make_services(sqlite_url, clock))
    runner = api.services.projections
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-1")).status_code == 201
    pay(api, "INV-1", "1.00", POISON)
    runner.catch_up()
    assert list(runner.stuck()) == ["aging"]
    once = cli(sqlite_url, "project", "--once", "aging", "worklist")  # another process sees it, and says so
    assert once.exit_code == 1
    assert f"aging is stuck at position {runner.head()} (Receivable.PaymentRecorded" in once.output
    poisoned["undo"]()
    runner.rebuild("aging")
    assert runner.stuck() == {} and runner.lag()["aging"] == 0
    api.services.close()
