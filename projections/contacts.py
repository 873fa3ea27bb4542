"""The contact log: every recorded contact, readable per receivable and per customer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.cipher import SealedText
from collections_es.domain import limitation
from collections_es.domain.compliance import ContactAttempt
from collections_es.domain.receivable import Receivable

from . import rows as rowlib
from .base import Item, Projection, metadata

# Which receivable belongs to which customer (from `Issued`), so log rows can name both.
contact_receivables = sa.Table(
    "rm_contact_receivables",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False),
)

contacts_log = sa.Table(
    "rm_contacts_log",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("receivable_id", sa.String(36), nullable=False, index=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    # Free text written about a conversation may name people, numbers, places: encrypted with a key (ADR 0030).
    sa.Column("note", SealedText, nullable=False),
    sa.Column("customer_attitude", SealedText, nullable=True),
    sa.Column("reason_for_non_payment", SealedText, nullable=True),
    sa.Column("promised_on", sa.Date, nullable=True),
    sa.Column("next_step", SealedText, nullable=True),
    sa.Column("interrupts_limitation", sa.Boolean, nullable=False),
)


class ContactsLog(Projection):
    name = "contacts_log"
    tables = (contacts_log, contact_receivables)

    @property
    def handles(self) -> Sequence[type]:
        return [Receivable.Issued, Receivable.ContactRecorded]

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        owners = {
            str(e.originator_id): {"id": str(e.originator_id), "invoice_number": e.invoice_number, "customer_id": e.customer_id}
            for e, _ in batch
            if isinstance(e, Receivable.Issued)
        }
        new_owners = list(owners.values())
        owners |= rowlib.load(conn, contact_receivables, {str(e.originator_id) for e, _ in batch} - set(owners))
        rows = []
        for event, position in batch:
            if not isinstance(event, Receivable.ContactRecorded):
                continue
            owner = owners[str(event.originator_id)]
            rows.append(
                {
                    "position": position,
                    "receivable_id": owner["id"],
                    "invoice_number": owner["invoice_number"],
                    "customer_id": owner["customer_id"],
                    # when the contact took place (the caps count by it), not when it was logged
                    "occurred_at": event.contact_at,
                    "actor": event.actor_id,
                    "role": event.actor_role,
                    "channel": event.channel,
                    "outcome": event.outcome,
                    "note": event.note,
                    "customer_attitude": event.customer_attitude,
                    "reason_for_non_payment": event.reason_for_non_payment,
                    "promised_on": event.promised_on,
                    "next_step": event.next_step,
                    # A demand or an acknowledgement interrupts the limitation period (domain/limitation.py).
                    "interrupts_limitation": limitation.contact_kind(event.outcome) is not None,
                }
            )
        if new_owners:
            conn.execute(contact_receivables.insert(), new_owners)
        if rows:
            conn.execute(contacts_log.insert(), rows)


def read_contacts(
    conn: sa.Connection,
    *,
    customer_id: str | None = None,
    receivable_id: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Contacts oldest first; `after` is the position of the last row of the previous page."""
    c = contacts_log.c
    query = sa.select(contacts_log).order_by(c.position).limit(limit)
    if customer_id is not None:
        query = query.where(c.customer_id == customer_id)
    if receivable_id is not None:
        query = query.where(c.receivable_id == receivable_id)
    if after is not None:
        query = query.where(c.position > after)
    return [dict(r._mapping) for r in conn.execute(query)]


def recent_contacts(conn: sa.Connection, customer_id: str, since: datetime) -> list[ContactAttempt]:
    """The customer's contacts after `since`, on all of its receivables (for the frequency caps)."""
    c = contacts_log.c
    query = (
        sa.select(c.receivable_id, c.occurred_at, c.channel)
        .where(c.customer_id == customer_id, c.occurred_at > since)
        .order_by(c.position)
    )
    return [ContactAttempt(r.receivable_id, _aware(r.occurred_at), r.channel) for r in conn.execute(query)]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
