"""The credit record: per customer, how they have paid, promised and been written off.

Counts and amounts are kept from the events; what depends on today (a recent
write-off, the hold) is decided at read time by `collections_es.domain.credit`.

The credit hold's changes are kept too (ADR 0045): after each event that can move it,
the hold is judged by the same rule as of that event's instant (the day in the
customer's time zone), and when it differs from the last judgement a row goes into
`credit_hold_changes`, whose id derives from the customer and the event's position, so
a rebuild writes the same rows. Webhook subscribers receive them as
`Customer.CreditHoldChanged`. A hold that lapses with time alone (a write-off growing
old) is judged again at the customer's next event, not at the instant it lapses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
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

# The last judgement of each customer's credit hold, and every change of it (ADR 0045).
credit_holds = sa.Table(
    "rm_credit_holds",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("credit_hold", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.String(200), nullable=False),  # comma-separated, the rule's order
    sa.Column("changes", sa.Integer, nullable=False),  # how many times it changed: the change's version
)

credit_hold_changes = sa.Table(
    "credit_hold_changes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("position", sa.BigInteger, nullable=False, index=True),  # the event that moved it
    sa.Column("credit_hold", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # the customer's n-th change of the hold
    sa.Column("recent_write_off_until", sa.Date, nullable=True),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),  # naive UTC: the event's instant
)

HOLD_CHANGE_NAMESPACE = uuid.UUID("5b0e2f7c-3d8a-4c41-9f6e-1a2b3c4d5e6f")


def hold_change_id(customer_id: str, position: int) -> str:
    return str(uuid.uuid5(HOLD_CHANGE_NAMESPACE, f"{customer_id}:{position}"))


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
    tables = (credit_receivables, credit_customers, credit_amounts, credit_holds, credit_hold_changes)

    def __init__(self, *, hold_days: int = 365) -> None:
        self.hold_days = hold_days

    @property
    def handles(self) -> Sequence[type]:
        # Only what moves money, promises or closes a receivable (settled is reached only by a
        # payment, a dispute adjustment or a waiver of charges, written off only by its approval): the `state` column
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
            Receivable.ChargesAccrued,
            Receivable.ChargesWaived,
            Customer.Registered,
            Customer.Updated,  # a new time zone moves the day the hold is judged on
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
            {str(e.originator_id) for e in events if isinstance(e, Customer.CreditLimitSet | Customer.Updated)},
            key="aggregate_id",
        )
        customers |= {row["customer_id"]: row for row in by_aggregate.values() if row["customer_id"] not in customers}
        known_customers = set(customers)
        amounts = self._load_amounts(conn, customer_ids, events)
        known_amounts = set(amounts)
        holds = rowlib.load(conn, credit_holds, set(customers) | customer_ids, key="customer_id")
        known_holds = set(holds)
        exposure = self._load_exposures(conn, set(customers) | customer_ids)
        changes: list[dict[str, Any]] = []

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

        def share(r: dict[str, Any]) -> Decimal:
            return Decimal(0) if r["state"] in CLOSED else Decimal(r["balance"])

        for event, position in batch:
            if isinstance(event, Customer.Registered):
                customer(event.customer_id).update(
                    aggregate_id=str(event.originator_id),
                    credit_limit=event.credit_limit,
                    credit_currency=event.credit_currency,
                )
                cid, zone = event.customer_id, event.timezone
                holds.setdefault(cid, _no_hold(cid))["timezone"] = zone
            elif isinstance(event, Customer.CreditLimitSet | Customer.Updated):
                cid = next((k for k, row in customers.items() if row["aggregate_id"] == str(event.originator_id)), None)
                if cid is None:
                    continue
                if isinstance(event, Customer.CreditLimitSet):
                    customers[cid] |= {"credit_limit": event.credit_limit, "credit_currency": event.credit_currency}
                elif "timezone" in event.changes:
                    holds.setdefault(cid, _no_hold(cid))["timezone"] = event.changes["timezone"]
                zone = None
            elif isinstance(event, Receivable.Issued):
                customer(event.customer_id)
                r = receivables[str(event.originator_id)] = {
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
                cid, zone = event.customer_id, event.timezone
                exposure[(cid, r["currency"])] = exposure.get((cid, r["currency"]), Decimal(0)) + share(r)
            else:
                r = receivables[str(event.originator_id)]
                before = share(r)
                self._evolve(r, event, customer(r["customer_id"]), amounts)
                cid, zone = r["customer_id"], r["timezone"]
                exposure[(cid, r["currency"])] = exposure.get((cid, r["currency"]), Decimal(0)) + share(r) - before
            change = self._judge(customers[cid], holds.setdefault(cid, _no_hold(cid)), exposure, event, position, zone)
            if change is not None:
                changes.append(change)
        rowlib.save(conn, credit_receivables, receivables, known_receivables)
        rowlib.save(conn, credit_customers, customers, known_customers, key="customer_id")
        rowlib.save(conn, credit_holds, holds, known_holds, key="customer_id")
        if changes:
            conn.execute(credit_hold_changes.insert(), changes)
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

    def _judge(self, customer: dict[str, Any], hold: dict[str, Any], exposure: dict[tuple[str, str], Decimal],
               event: Any, position: int, zone: str | None) -> dict[str, Any] | None:
        """The hold as of this event's instant; a change row when it differs from the last judgement."""
        limit, currency = customer["credit_limit"], customer["credit_currency"]
        today = rowlib.local_date(event.timestamp, hold["timezone"] or zone or "UTC")
        reasons = hold_reasons(
            exposure=exposure.get((customer["customer_id"], currency), Decimal(0)) if currency else None,
            credit_limit=Decimal(limit) if limit is not None else None,
            last_write_off_on=customer["last_write_off_on"],
            today=today,
            hold_days=self.hold_days,
        )
        joined = ",".join(reasons)
        if bool(reasons) == hold["credit_hold"] and joined == hold["reasons"]:
            return None
        hold |= {"credit_hold": bool(reasons), "reasons": joined, "changes": hold["changes"] + 1}
        until = customer["last_write_off_on"] + timedelta(days=self.hold_days) if "recent_write_off" in reasons else None
        return {
            "id": hold_change_id(customer["customer_id"], position),
            "customer_id": customer["customer_id"],
            "position": position,
            "version": hold["changes"],
            "credit_hold": bool(reasons),
            "reasons": joined,
            "recent_write_off_until": until,
            "occurred_at": rowlib.naive_utc(event.timestamp),
        }

    @staticmethod
    def _load_exposures(conn: sa.Connection, customer_ids: set[str]) -> dict[tuple[str, str], Decimal]:
        """Open balance per (customer, currency) before the batch."""
        r = credit_receivables.c
        found: dict[tuple[str, str], Decimal] = {}
        wanted = sorted(customer_ids)
        for i in range(0, len(wanted), rowlib.CHUNK):
            query = (
                sa.select(r.customer_id, r.currency, sa.func.sum(r.balance))
                .where(r.customer_id.in_(wanted[i : i + rowlib.CHUNK]), r.state.not_in(CLOSED))
                .group_by(r.customer_id, r.currency)
            )
            found |= {(cid, cur): Decimal(total) for cid, cur, total in conn.execute(query)}
        return found

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
            # With charges the event says what is owed after it (docs/charges.md).
            r["balance"] = event.balance_after if event.balance_after is not None else event.adjusted_amount - r["paid"]
            if promise_open and lifecycle.is_settled(event.state_after):
                customer["promises_kept"] += 1
                promise_open = False
        elif isinstance(event, Receivable.ChargesAccrued):  # exposure is everything owed, charges too
            r["balance"] += event.interest + event.fee
        elif isinstance(event, Receivable.ChargesWaived):
            r["balance"] -= event.amount
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


def _no_hold(customer_id: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "timezone": None, "credit_hold": False, "reasons": "", "changes": 0}


def hold_changes_between(conn: sa.Connection, after: int, upto: int) -> list[dict[str, Any]]:
    """The credit hold's changes caused by the events at positions in (after, upto], in order."""
    c = credit_hold_changes.c
    query = sa.select(credit_hold_changes).where(c.position > after, c.position <= upto).order_by(c.position)
    return [dict(row._mapping) for row in conn.execute(query)]


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
