"""The receivables list: one row per receivable, for filtered, paginated lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from collections_es.domain.calendar import start_of_day
from collections_es.domain import lifecycle
from collections_es.domain.receivable import Receivable

from . import rows as rowlib
from .base import Item, Projection, metadata

CLOSED_STATES = lifecycle.CLOSED_STATES

receivables = sa.Table(
    "rm_receivables",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("collector", sa.String(128), nullable=True, index=True),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.Numeric(24, 4), nullable=False),
    sa.Column("paid", sa.Numeric(24, 4), nullable=False),
    sa.Column("adjustment", sa.Numeric(24, 4), nullable=False),
    sa.Column("balance", sa.Numeric(24, 4), nullable=False),
    sa.Column("issued_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False, index=True),
    # The instant (naive UTC) the receivable becomes one day past due in its customer's zone.
    sa.Column("overdue_from", sa.DateTime(), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)


class ReceivablesList(Projection):
    name = "receivables"
    tables = (receivables,)

    @property
    def handles(self) -> Sequence[type]:
        return Receivable.event_classes()

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        known = rowlib.load(conn, receivables, {str(e.originator_id) for e, _ in batch if not isinstance(e, Receivable.Issued)})
        existing = set(known)
        for event, position in batch:
            rid = str(event.originator_id)
            if isinstance(event, Receivable.Issued):
                row = known[rid] = {
                    "id": rid,
                    "invoice_number": event.invoice_number,
                    "customer_id": event.customer_id,
                    "collector": event.collector,
                    "currency": event.currency,
                    "amount": event.amount,
                    "paid": Decimal(0),
                    "adjustment": Decimal(0),
                    "balance": event.amount,
                    "issued_on": event.issued_on,
                    "due_on": event.due_on,
                    "overdue_from": start_of_day(event.due_on + timedelta(days=1), event.timezone).replace(tzinfo=None),
                }
            else:
                row = known[rid]
            if isinstance(event, Receivable.PaymentRecorded):
                row["paid"] += event.amount
                row["balance"] -= event.amount
            elif isinstance(event, Receivable.DisputeResolved) and event.adjusted_amount is not None:
                # The principal falls by what the resolution takes off; charges owed stay owed.
                row["balance"] -= row["amount"] - row["adjustment"] - event.adjusted_amount
                row["adjustment"] = row["amount"] - event.adjusted_amount
            elif isinstance(event, Receivable.ChargesAccrued):  # `balance` is everything owed (docs/charges.md)
                row["balance"] += event.interest + event.fee
            elif isinstance(event, Receivable.ChargesWaived):
                row["balance"] -= event.amount
            elif isinstance(event, Receivable.CollectorAssigned):
                row["collector"] = event.collector
            row |= {"state": event.state_after, "version": event.originator_version, "position": position}
        rowlib.save(conn, receivables, known, existing)


def list_receivables(
    conn: sa.Connection,
    *,
    state: str | None = None,
    customer_id: str | None = None,
    collector: str | None = None,
    currency: str | None = None,
    overdue_at: datetime | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Rows ordered by id; `after` is the last id of the previous page (the cursor)."""
    row = receivables.c
    query = sa.select(receivables).order_by(row.id).limit(limit)
    if state:
        query = query.where(row.state == state)
    if customer_id:
        query = query.where(row.customer_id == customer_id)
    if collector:
        query = query.where(row.collector == collector)
    if currency:
        query = query.where(row.currency == currency)
    if overdue_at is not None:
        naive = overdue_at.astimezone(UTC).replace(tzinfo=None)
        query = query.where(row.overdue_from <= naive, row.state.not_in(CLOSED_STATES), row.balance > Decimal(0))
    if after:
        query = query.where(row.id > after)
    return [dict(r._mapping) for r in conn.execute(query)]


class ProjectedVersions:
    """The version and log position of each receivable as this read model saw it, which the
    audit compares with the store (`application.audit.ReadModelVersions`)."""

    PAGE_SIZE = 1000

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def exists(self) -> bool:
        with self.engine.execution_options(read_only=True).connect() as conn:
            return sa.inspect(conn).has_table(receivables.name)

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        query = sa.select(receivables.c.id, receivables.c.version, receivables.c.position)
        with self.engine.execution_options(read_only=True).connect() as conn:  # never takes SQLite's write lock
            for rid, version, position in conn.execution_options(yield_per=self.PAGE_SIZE).execute(query):
                yield rid, version, position
