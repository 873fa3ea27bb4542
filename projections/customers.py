"""The customers list: one row per customer file, for filtered, paginated lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collections_es.domain.customer import Customer

from .base import Projection, metadata

customers = sa.Table(
    "rm_customers",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("aggregate_id", sa.String(36), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False, index=True),
    sa.Column("preferred_channel", sa.String(16), nullable=False, index=True),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("credit_limit", sa.Numeric(24, 4), nullable=True),
    sa.Column("credit_currency", sa.String(3), nullable=True),
    sa.Column("credit_rating", sa.String(16), nullable=True, index=True),
    sa.Column("version", sa.Integer, nullable=False),
)

# Profile fields the list keeps (contacts are PII and stay out of this table).
_LISTED = {"name", "tier", "preferred_channel", "language", "timezone", "credit_rating"}


class CustomersList(Projection):
    name = "customers"
    tables = (customers,)

    @property
    def handles(self) -> Sequence[type]:
        return Customer.event_classes()

    def apply(self, conn: sa.Connection, event: Any, position: int, prepared: Any = None) -> None:
        if isinstance(event, Customer.Registered):
            conn.execute(
                customers.insert().values(
                    customer_id=event.customer_id,
                    aggregate_id=str(event.originator_id),
                    name=event.name,
                    tier=event.tier,
                    preferred_channel=event.preferred_channel,
                    language=event.language or "zh-CN",
                    timezone=event.timezone,
                    credit_limit=event.credit_limit,
                    credit_currency=event.credit_currency,
                    credit_rating=event.credit_rating,
                    version=event.originator_version,
                )
            )
            return
        values: dict[str, Any] = {"version": event.originator_version}
        if isinstance(event, Customer.Updated):
            values |= {k: v for k, v in event.changes.items() if k in _LISTED}
        elif isinstance(event, Customer.CreditLimitSet):
            values |= {"credit_limit": event.credit_limit, "credit_currency": event.credit_currency}
        conn.execute(customers.update().where(customers.c.aggregate_id == str(event.originator_id)).values(**values))


def list_customers(
    conn: sa.Connection,
    *,
    tier: str | None = None,
    preferred_channel: str | None = None,
    credit_rating: str | None = None,
    name_contains: str | None = None,
    customer_ids_in: Sequence[str] | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    row = customers.c
    query = sa.select(customers).order_by(row.customer_id).limit(limit)
    if tier:
        query = query.where(row.tier == tier)
    if preferred_channel:
        query = query.where(row.preferred_channel == preferred_channel)
    if credit_rating:
        query = query.where(row.credit_rating == credit_rating)
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(row.name.like(f"%{escaped}%", escape="\\"))
    if customer_ids_in is not None:
        query = query.where(row.customer_id.in_(list(customer_ids_in)))
    if after:
        query = query.where(row.customer_id > after)
    return [dict(r._mapping) for r in conn.execute(query)]
