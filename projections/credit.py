"""The credit record: per customer, how they have paid, promised and been written off.

Counts and amounts are kept from the events; what depends on today (a recent
write-off, the hold) is decided at read time by `collections_es.domain.credit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collections_es.domain import lifecycle
from collections_es.domain.credit import RATING_RULE, CreditHistory, hold_reasons, rate
from collections_es.domain.customer import Customer
from collections_es.domain.money import format_money, minor_units
from collections_es.domain.receivable import Receivable

from . import rows as rowlib
from .base import Item, Projection, metadata

CLOSED = lifecycle.CLOSED_STATES

credit_receivables = sa.Table(
    "rm_credit_receivables",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("amount", sa.Numeric(24, 4), nullable=False),
    sa.Column("paid", sa.Numeric(24, 4), nullable=False),
    sa.Column("balance", sa.Numeric(24, 4), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("last_paid_on", sa.Date, nullable=True),
    sa.Column("promise_open", sa.Boolean, nullable=False),
    sa.Column("promise_amount", sa.Numeric(24, 4), nullable=True),
    sa.Column("promise_paid", sa.Numeric(24, 4), nullable=False),
)

credit_customers = sa.Table(
    "rm_credit_customers",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("aggregate_id", sa.String(36), nullable=True, unique=True),
    sa.Column("settled_on_time", sa.Integer, nullable=False),
    sa.Column("settled_late", sa.Integer, nullable=False),
    sa.Column("days_late_total", sa.Integer, nullable=False),
    sa.Column("promises_made", sa.Integer, nullable=False),
    sa.Column("promises_kept", sa.Integer, nullable=False),
    sa.Column("promises_broken", sa.Integer, nullable=False),
    sa.Column("last_write_off_on", sa.Date, nullable=True),
    sa.Column("credit_limit", sa.Numeric(24, 4), nullable=True),
    sa.Column("credit_currency", sa.String(3), nullable=True),
)

credit_amounts = sa.Table(
    "rm_credit_amounts",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("written_off", sa.Numeric(24, 4), nullable=False),
    sa.Column("recovered", sa.Numeric(24, 4), nullable=False),
)

_ZERO_COUNTS = {
    "settled_on_time": 0,
    "settled_late": 0,
    "days_late_total": 0,
    "promises_made": 0,
    "promises_kept": 0,
    "promises_broken": 0,
}


class CreditRecords(Projection):
    name = "credit_records"
    tables = (credit_receivables, credit_customers, credit_amounts)

    @property
    def handles(self) -> Sequence[type]:
        # Only what moves money, promises or closes a receivable (settled is reached only by a
        # payment or a dispute adjustment, written off only by its approval): the `state` column
        # is the state after the last of these, which is all `exposures` needs.
        return [
            Receivable.Issued,
            Receivable.PaymentRecorded,
            Receivable.DisputeResolved,
            Receivable.PromiseMade,
            Receivable.InstallmentPlanAgreed,
            Receivable.PromiseBroken,
            Receivable.PromiseKept,
            Receivable.WriteOffApproved,
            Receivable.RecoveryRecorded,
            Customer.Registered,
            Customer.CreditLimitSet,
        ]

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        """Load what the batch touches, evolve it in memory, write it back (projections/rows.py)."""
        events = [e for e, _ in batch]
        receivables = rowlib.load(
            conn, credit_receivables, {str(e.originator_id) for e in events if isinstance(e, Receivable.Event)}
        )
        known_receivables = set(receivables)
        customer_ids = {r["customer_id"] for r in receivables.values()} | {
            e.customer_id for e in events if isinstance(e, Receivable.Issued | Customer.Registered)
        }
        customers = rowlib.load(conn, credit_customers, customer_ids, key="customer_id")
        by_aggregate = rowlib.load(
            conn,
            credit_customers,
            {str(e.originator_id) for e in events if isinstance(e, Customer.CreditLimitSet)},
            key="aggregate_id",
        )
        customers |= {row["customer_id"]: row for row in by_aggregate.values() if row["customer_id"] not in customers}
        known_customers = set(customers)
        amounts = self._load_amounts(conn, customer_ids, events)
        known_amounts = set(amounts)

        def customer(customer_id: str) -> dict[str, Any]:
            if customer_id not in customers:
                customers[customer_id] = {
                    "customer_id": customer_id,
                    "aggregate_id": None,
                    "last_write_off_on": None,
                    "credit_limit": None,
                    "credit_currency": None,
                    **_ZERO_COUNTS,
                }
            return customers[customer_id]

        for event in events:
            if isinstance(event, Customer.Registered):
                customer(event.customer_id).update(
                    aggregate_id=str(event.originator_id),
                    credit_limit=event.credit_limit,
                    credit_currency=event.credit_currency,
                )
            elif isinstance(event, Customer.CreditLimitSet):
                for row in customers.values():
                    if row["aggregate_id"] == str(event.originator_id):
                        row |= {"credit_limit": event.credit_limit, "credit_currency": event.credit_currency}
            elif isinstance(event, Receivable.Issued):
                customer(event.customer_id)
                receivables[str(event.originator_id)] = {
                    "id": str(event.originator_id),
                    "customer_id": event.customer_id,
                    "currency": event.currency,
                    "timezone": event.timezone,
                    "due_on": event.due_on,
                    "amount": event.amount,
                    "paid": Decimal(0),
                    "balance": event.amount,
                    "state": event.state_after,
                    "last_paid_on": None,
                    "promise_open": False,
                    "promise_amount": None,
                    "promise_paid": Decimal(0),
                }
            else:
                r = receivables[str(event.originator_id)]
                self._evolve(r, event, customer(r["customer_id"]), amounts)
        rowlib.save(conn, credit_receivables, receivables, known_receivables)
        rowlib.save(conn, credit_customers, customers, known_customers, key="customer_id")
        inserts = [row for k, row in amounts.items() if k not in known_amounts]
        updates = [row for k, row in amounts.items() if k in known_amounts]
        if inserts:
            conn.execute(credit_amounts.insert(), inserts)
        if updates:
            a = credit_amounts.c
            conn.execute(
                credit_amounts.update()
                .where(a.customer_id == sa.bindparam("_customer"), a.currency == sa.bindparam("_currency"))
                .values(written_off=sa.bindparam("written_off"), recovered=sa.bindparam("recovered")),
                [{"_customer": r["customer_id"], "_currency": r["currency"], **r} for r in updates],
            )

    @staticmethod
    def _load_amounts(conn: sa.Connection, customer_ids: set[str], events: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
        """The written-off/recovered rows of the batch's customers, when the batch moves any."""
        if not any(isinstance(e, Receivable.WriteOffApproved | Receivable.RecoveryRecorded) for e in events):
            return {}
        found = rowlib.select_in(conn, credit_amounts, "customer_id", customer_ids)
        return {(row["customer_id"], row["currency"]): row for row in found}

    @staticmethod
    def _evolve(r: dict[str, Any], event: Any, customer: dict[str, Any], amounts: dict[tuple[str, str], dict[str, Any]]) -> None:
        promise_open = r["promise_open"]
        was_settled = lifecycle.is_settled(r["state"])
        if isinstance(event, Receivable.PaymentRecorded):
            r["paid"] += event.amount
            r["balance"] -= event.amount
            r["last_paid_on"] = event.paid_on
            if promise_open:
                r["promise_paid"] += event.amount
                if r["promise_paid"] >= r["promise_amount"] or lifecycle.is_settled(event.state_after):
                    customer["promises_kept"] += 1
                    promise_open = False
        elif isinstance(event, Receivable.DisputeResolved) and event.adjusted_amount is not None:
            r["balance"] = event.adjusted_amount - r["paid"]
            if promise_open and lifecycle.is_settled(event.state_after):
                customer["promises_kept"] += 1
                promise_open = False
        elif isinstance(event, Receivable.PromiseMade | Receivable.InstallmentPlanAgreed):
            if isinstance(event, Receivable.PromiseMade):
                promised = event.amount
            else:
                promised = sum((i["amount"] for i in event.installments), Decimal(0))
            customer["promises_made"] += 1
            promise_open = True
            r["promise_amount"], r["promise_paid"] = promised, Decimal(0)
        elif isinstance(event, Receivable.PromiseBroken):
            if promise_open:
                customer["promises_broken"] += 1
            promise_open = False
        elif isinstance(event, Receivable.PromiseKept):
            # Counted by the payment that covered it (which closed it), here only if still open.
            if promise_open:
                customer["promises_kept"] += 1
            promise_open = False
        elif isinstance(event, Receivable.WriteOffApproved | Receivable.RecoveryRecorded):
            key = (r["customer_id"], r["currency"])
            cell = amounts.setdefault(
                key, {"customer_id": key[0], "currency": key[1], "written_off": Decimal(0), "recovered": Decimal(0)}
            )
            if isinstance(event, Receivable.WriteOffApproved):
                cell["written_off"] += event.amount
                promise_open = False
                customer["last_write_off_on"] = event.timestamp.astimezone(ZoneInfo(r["timezone"])).date()
            else:
                cell["recovered"] += event.amount
        if lifecycle.is_settled(event.state_after) and not was_settled:
            settled_on = r["last_paid_on"] or event.timestamp.astimezone(ZoneInfo(r["timezone"])).date()
            late = max(0, (settled_on - r["due_on"]).days)
            customer["settled_late" if late else "settled_on_time"] += 1
            customer["days_late_total"] += late
        r["state"] = event.state_after
        r["promise_open"] = promise_open


def _fmt(amount: Decimal, currency: str) -> str:
    return format_money(Decimal(amount).quantize(Decimal(1).scaleb(-minor_units(currency))))


def exposures(conn: sa.Connection, customer_id: str) -> dict[str, Decimal]:
    """Open balance per currency of the customer's receivables that are neither settled nor written off."""
    r = credit_receivables.c
    query = (
        sa.select(r.currency, sa.func.sum(r.balance))
        .where(r.customer_id == customer_id, r.state.not_in(CLOSED))
        .group_by(r.currency)
    )
    return {currency: Decimal(total) for currency, total in conn.execute(query)}


def read_credit_record(conn: sa.Connection, customer_id: str, *, today: date, hold_days: int) -> dict[str, Any] | None:
    """The credit record as the API shows it; None if the customer has no row yet."""
    row = conn.execute(sa.select(credit_customers).where(credit_customers.c.customer_id == customer_id)).mappings().first()
    if row is None:
        return None
    amounts = {
        a["currency"]: a
        for a in conn.execute(sa.select(credit_amounts).where(credit_amounts.c.customer_id == customer_id)).mappings()
    }
    open_balances = exposures(conn, customer_id)
    currencies = sorted(set(amounts) | set(open_balances))
    by_currency = [
        {
            "currency": cur,
            "written_off": _fmt(amounts[cur]["written_off"] if cur in amounts else Decimal(0), cur),
            "recovered": _fmt(amounts[cur]["recovered"] if cur in amounts else Decimal(0), cur),
            "exposure": _fmt(open_balances.get(cur, Decimal(0)), cur),
        }
        for cur in currencies
    ]
    written_off = sum((Decimal(a["written_off"]) for a in amounts.values()), Decimal(0))
    unrecovered = any(Decimal(a["written_off"]) > Decimal(a["recovered"]) for a in amounts.values())
    history = CreditHistory(
        settled_on_time=row["settled_on_time"],
        settled_late=row["settled_late"],
        days_late_total=row["days_late_total"],
        promises_made=row["promises_made"],
        promises_kept=row["promises_kept"],
        promises_broken=row["promises_broken"],
        unrecovered_write_off=unrecovered,
        any_write_off=written_off > 0,
    )
    limit = Decimal(row["credit_limit"]) if row["credit_limit"] is not None else None
    limit_currency = row["credit_currency"]
    exposure = open_balances.get(limit_currency, Decimal(0)) if limit_currency else None
    reasons = hold_reasons(
        exposure=exposure,
        credit_limit=limit,
        last_write_off_on=row["last_write_off_on"],
        today=today,
        hold_days=hold_days,
    )
    return {
        "customer_id": customer_id,
        "settled_on_time": history.settled_on_time,
        "settled_late": history.settled_late,
        "average_days_late": str(history.average_days_late),
        "promises_made": history.promises_made,
        "promises_kept": history.promises_kept,
        "promises_broken": history.promises_broken,
        "by_currency": by_currency,
        "credit_limit": {"amount": _fmt(limit, limit_currency), "currency": limit_currency} if limit is not None else None,
        "exposure_in_limit_currency": _fmt(exposure, limit_currency) if exposure is not None and limit_currency else None,
        "over_credit_limit": "over_credit_limit" in reasons,
        "last_write_off_on": row["last_write_off_on"],
        "recent_write_off": "recent_write_off" in reasons,
        "credit_hold": bool(reasons),
        "credit_hold_reasons": reasons,
        "rating": rate(history),
        "rating_rule": RATING_RULE,
    }


def customers_on_hold(conn: sa.Connection, zones: dict[str, str], *, now: datetime, hold_days: int) -> set[str]:
    """Of the given customers (id → time zone), those on credit hold at `now`."""
    held = set()
    for cid, zone in zones.items():
        today = now.astimezone(ZoneInfo(zone)).date()
        record = read_credit_record(conn, cid, today=today, hold_days=hold_days)
        if record is not None and record["credit_hold"]:
            held.add(cid)
    return held
