"""A small generated history for pages to show: two customers (Shanghai, CNY; Los Angeles, USD),
receivables in several states and collectors, a promise, payments, a dispute. Written through the
HTTP API in-process (the site's `Api`), as the service, collectors and supervisors would.

`seed(site)` returns name → receivable reference (its invoice number) and keeps it in `site.ids`,
so a page path can say `/console/receivables/{overdue}`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..integration.conftest import CUSTOMER, invoice
from .harness import Site

LA_CUSTOMER = {**CUSTOMER, "customer_id": "C-LA-1", "name": "Pacific Trading LLC", "timezone": "America/Los_Angeles", "tier": "B"}

# name → (invoice number, fields); issued on the days given, the clock then set to SEEDED_AT
RECEIVABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "current": ("INV-2026-0101", {"amount": "2000.00", "issued_on": "2026-03-05", "due_on": "2026-04-04"}),
    "overdue": ("INV-2026-0102", {"amount": "1200.50", "issued_on": "2026-02-02", "due_on": "2026-03-04"}),
    "promised": ("INV-2026-0103", {"amount": "800.00", "issued_on": "2026-02-10", "due_on": "2026-03-12"}),
    "paid": ("INV-2026-0104", {"amount": "500.00", "issued_on": "2026-02-20", "due_on": "2026-03-22"}),
    "disputed": ("INV-2026-0105", {"amount": "950.00", "issued_on": "2026-02-15", "due_on": "2026-03-17", "collector": "collector-2"}),
    "usd": ("INV-2026-0106", {"amount": "300.00", "currency": "USD", "customer_id": "C-LA-1", "issued_on": "2026-03-01", "due_on": "2026-03-31"}),
}
SEEDED_AT = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Friday


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def seed(site: Site) -> dict[str, str]:
    api = site.api
    clock = site.services.clock
    clock.at = SEEDED_AT - timedelta(days=20)  # type: ignore[attr-defined]
    for customer in (CUSTOMER, LA_CUSTOMER):
        _ok(api.as_("supervisor").post("/customers", json=customer), 201)
    for number, fields in RECEIVABLES.values():
        _ok(api.as_("service").post("/receivables", json=invoice(number, **fields)), 201)
    clock.at = SEEDED_AT  # type: ignore[attr-defined]
    ids = {name: number for name, (number, _) in RECEIVABLES.items()}

    def command(who: str, name: str, action: str, body: dict[str, Any] | None = None) -> None:
        _ok(api.as_(who).post(f"/receivables/{ids[name]}/{action}", json=body))

    for name in ("overdue", "promised", "disputed"):
        command("service", name, "fall-due")
    command("collector", "promised", "promise-to-pay", {"amount": "800.00", "promised_on": "2026-03-27"})
    command("service", "overdue", "record-payment", {"amount": "200.50", "method": "bank_transfer", "paid_on": "2026-03-18", "reference": "BT-0102-1"})
    command("service", "paid", "record-payment", {"amount": "500.00", "method": "bank_transfer", "paid_on": "2026-03-19", "reference": "BT-0104-1"})
    command("collector", "disputed", "raise-dispute", {"reason": "two cartons arrived damaged"})
    site.ids.update(ids)
    return ids
