"""The figures a letter or message shows, taken from the receivable and the customer file."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..domain.customer import Customer
from ..domain.receivable import Receivable

# Which company `pay_within_days` entry a message or letter kind uses (the company file keeps
# the lawyer's letter's entry under its earlier name, `lawyer`).
_PAY_WITHIN = {"first_dunning": "dunning", "broken_promise": "dunning", "lawyer_letter": "lawyer"}


def figures(
    r: Receivable,
    customer: Customer | None,
    now: datetime,
    kind: str,
    company: dict[str, Any],
    *,
    portal_url: str | None = None,
) -> dict[str, Any]:
    """Everything the templates name, as of `now` in the customer's time zone; `portal_url`, the
    customer's portal link, when the policy puts one into messages and letters (docs/portal.md)."""
    letter_date = r.local_date(now)
    days = company.get("pay_within_days", {}).get(_PAY_WITHIN.get(kind, kind))
    pay_by = r.due_on if days is None or kind in ("reminder", "pre_due_reminder") else letter_date + timedelta(days=int(days))
    installment = r.next_installment() if kind == "installment_reminder" else None
    return {
        "installment": installment,  # the plan's next installment, for its reminder (ADR 0050)
        "invoice_number": r.invoice_number,
        "currency": r.currency,
        "amount": r.amount - r.adjustment,
        "paid": r.paid,
        "balance": r.balance,
        # The balance by part, shown when the receivable has charges (docs/charges.md).
        "has_charges": r.charges_state is not None,
        **r.balance_breakdown,
        "charges_through": r.charges["through"],
        "issued_on": r.issued_on,
        "due_on": r.due_on,
        "days_past_due": r.days_past_due(now),
        "letter_date": letter_date,
        "pay_by": pay_by,
        "portal_url": portal_url,
        "customer": {
            "customer_id": r.customer_id,
            "name": customer.name if customer else r.customer_id,
            "address": (customer.contacts.get("address") if customer else None) or "",
        },
    }
