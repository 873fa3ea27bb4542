"""The notification outbox: follows the event log and turns the policy's steps into messages.

Exactly once per event, like every projection: the message rows are written in
the batch transaction that moves the position. Each message's id derives from
its event (aggregate id, version, kind), so a rebuild or a second worker never
creates a second message, and transports pass the id on (SMTP Message-ID, the
webhook's Idempotency-Key) so a retried send is recognisable downstream.
Sending is `collections_es.application.notifier`; this table is its queue, and
`SqlOutbox` the notifier's port onto it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.cipher import SealedText
from collections_es.letters.figures import figures
from collections_es.domain.customer import Customer
from collections_es.domain.receivable import Receivable

from .base import Projection, metadata

MESSAGE_NAMESPACE = uuid.UUID("a3c9f4e2-6d1b-4b57-9e0a-2f8d7c6b5a41")
KIND_OF = {
    Receivable.ReminderSent: "pre_due_reminder",
    Receivable.FollowUpStarted: "first_dunning",
    Receivable.PromiseBroken: "broken_promise",
    Receivable.InstallmentReminderSent: "installment_reminder",
}

messages = sa.Table(
    "outbox_messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=True),
    # Contact details and the rendered text (names, address): encrypted with a key (ADR 0030).
    sa.Column("recipient", SealedText, nullable=True),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("subject", SealedText, nullable=False),
    sa.Column("body", SealedText, nullable=False),
    sa.Column("receivable_id", sa.String(36), nullable=False, index=True),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    # Instants are naive UTC (SQLite keeps no zone).
    sa.Column("next_attempt_at", sa.DateTime(), nullable=True, index=True),
    sa.Column("lease_until", sa.DateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),  # never holds the recipient (the notifier scrubs it)
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("sent_at", sa.DateTime(), nullable=True),
)


def message_id(event: Any, kind: str) -> str:
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{event.originator_id}:{event.originator_version}:{kind}"))


def naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


class SqlOutbox:
    """The notifier's view of the outbox (its `OutboxStore` port): what is due, and each message
    taken by one sender at a time (ADR 0063). On PostgreSQL a sender locks the row it takes
    `FOR UPDATE SKIP LOCKED` and keeps the lock while it sends, writing the outcome in the same
    transaction: other senders pass over it, and a sender that dies lets go at once (its
    connection ends, its transaction with it). On SQLite (one process) a conditional UPDATE
    and a lease claim it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.locks_rows = engine.dialect.name == "postgresql"
        self._held: dict[str, sa.Connection] = {}  # message id -> the transaction holding its lock

    def expire_stale(self, before: datetime, note: str) -> None:
        """Messages never tried whose event is older than `before` end as `expired`, unsent
        (passing over any a sender holds: it is sending it)."""
        m = messages.c
        stale = (
            sa.select(m.id)
            .where(m.status == "pending", m.attempts == 0, m.created_at < naive_utc(before))
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            conn.execute(
                messages.update()
                .where(m.id.in_(stale.scalar_subquery()))
                .values(status="expired", next_attempt_at=None, last_error=note)
            )

    @staticmethod
    def _due(now: datetime) -> sa.Select:
        m, at = messages.c, naive_utc(now)
        due = sa.or_(
            sa.and_(m.status == "pending", m.next_attempt_at <= at),
            sa.and_(m.status == "sending", m.lease_until <= at),
        )
        return sa.select(messages).where(due).order_by(m.position, m.id)

    def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending messages whose next attempt is due, and those whose sender's lease ran out."""
        with self.engine.execution_options(read_only=True).connect() as conn:
            return [dict(r._mapping) for r in conn.execute(self._due(now).limit(limit))]

    @contextmanager
    def take(self, now: datetime, until: datetime) -> Iterator[dict[str, Any] | None]:
        """The first due message no other sender holds, held until the block ends (None when there is none)."""
        if not self.locks_rows:
            for row in self.due(now, 10):
                if self.claim(row, until):
                    yield row
                    return
            yield None
            return
        with self.engine.connect() as conn, conn.begin():
            found = conn.execute(self._due(now).limit(1).with_for_update(skip_locked=True)).first()
            if found is None:
                yield None
                return
            row = dict(found._mapping)
            self._held[row["id"]] = conn
            try:
                yield row
            finally:
                self._held.pop(row["id"], None)

    def claim(self, row: dict[str, Any], until: datetime) -> bool:
        """Take the message for sending until `until`, unless another sender changed it first."""
        m = messages.c
        with self.engine.begin() as conn:
            claimed = conn.execute(
                messages.update()
                .where(m.id == row["id"], m.status == row["status"], m.attempts == row["attempts"])
                .values(status="sending", lease_until=naive_utc(until))
            ).rowcount
        return claimed == 1

    def finish(self, message_id: str, status: str, attempts: int, *, error: str | None = None,
               sent_at: datetime | None = None, next_attempt_at: datetime | None = None) -> None:
        """The attempt's outcome, written only while the message is still ours: in the transaction
        that holds its lock, or (a lease) while it is still `sending`."""
        values = {
            "status": status,
            "attempts": attempts,
            "lease_until": None,
            "next_attempt_at": naive_utc(next_attempt_at) if next_attempt_at else None,
        }
        if error is not None:
            values["last_error"] = error
        if sent_at is not None:
            values["sent_at"] = naive_utc(sent_at)
        held = self._held.get(message_id)
        if held is not None:
            held.execute(messages.update().where(messages.c.id == message_id).values(**values))
            return
        with self.engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == message_id, messages.c.status == "sending").values(**values))


def choose_channel(customer: Customer | None, asked: str | None = None) -> tuple[str | None, str | None]:
    """The channel the event names, else the customer's preferred one, when it is e-mail or
    SMS and they have that contact; else e-mail, else SMS; (None, None) when neither is on file."""
    if customer is None:
        return None, None
    reachable = {"email": customer.contacts.get("email"), "sms": customer.contacts.get("phone")}
    for wanted in (asked, customer.preferred_channel):
        if wanted in reachable and reachable[wanted]:
            return wanted, reachable[wanted]
    for channel in ("email", "sms"):
        if reachable[channel]:
            return channel, reachable[channel]
    return None, None


class Outbox(Projection):
    name = "outbox"
    tables = (messages,)
    shadowed = False  # its rows record what was sent: rebuilt in place (ADR 0065)

    def __init__(
        self,
        *,
        load_receivable: Callable[[uuid.UUID, int], Receivable],
        load_customer_as_of: Callable[[str, datetime], Customer | None],
        earlier_events: Callable[[uuid.UUID, int], list[Any]],
        letters: Any,
        engine: sa.Engine | None = None,
        portal_url: Callable[[str, datetime, str], str | None] = lambda customer_id, now, policy_version: None,
    ) -> None:
        self.engine = engine
        self.load_receivable = load_receivable
        self.load_customer_as_of = load_customer_as_of
        self.earlier_events = earlier_events
        self.letters = letters
        # The customer's portal link for a message, when the policy in force puts one in (docs/portal.md).
        self.portal_url = portal_url

    @property
    def handles(self) -> Sequence[type]:
        return list(KIND_OF)

    def prepare(self, events: list[Any]) -> dict[str, dict[str, Any]]:
        """Render each message before the transaction (reads the receivable at the event's
        version and the customer file as it was at the event's instant: a rebuild renders the same)."""
        out: dict[str, dict[str, Any]] = {}
        existing = self._existing({message_id(e, KIND_OF[type(e)]) for e in events})
        for event in events:
            kind = KIND_OF[type(event)]
            if message_id(event, kind) in existing:
                continue  # a rebuild: the message exists already, no need to render it again
            if kind == "first_dunning" and any(
                isinstance(e, Receivable.FollowUpStarted)
                for e in self.earlier_events(event.originator_id, event.originator_version)
            ):
                continue  # only the first follow-up sends the first dunning letter
            r = self.load_receivable(event.originator_id, event.originator_version)
            customer = self.load_customer_as_of(r.customer_id, event.timestamp)
            language = customer.language if customer else "zh-CN"
            channel, recipient = choose_channel(customer, getattr(event, "channel", None))
            link = self.portal_url(r.customer_id, event.timestamp, event.policy_version)
            data = figures(r, customer, event.timestamp, kind, self.letters.company, portal_url=link)
            subject, body = self.letters.message(channel or "email", kind, language, data)
            out[message_id(event, kind)] = {
                "kind": kind,
                "channel": channel,
                "recipient": recipient,
                "language": language,
                "subject": subject,
                "body": body,
                "receivable_id": str(r.id),
                "customer_id": r.customer_id,
            }
        return out

    def _existing(self, ids: set[str]) -> set[str]:
        if self.engine is None or not ids:
            return set()
        found: set[str] = set()
        ordered = sorted(ids)
        with self.engine.execution_options(read_only=True).connect() as conn:
            for i in range(0, len(ordered), 500):
                found |= set(conn.execute(sa.select(messages.c.id).where(messages.c.id.in_(ordered[i : i + 500]))).scalars())
        return found

    def apply(self, conn: sa.Connection, event: Any, position: int, prepared: Any = None) -> None:
        mid = message_id(event, KIND_OF[type(event)])
        message = (prepared or {}).get(mid)
        if message is None:
            return
        if conn.execute(sa.select(messages.c.id).where(messages.c.id == mid)).first() is not None:
            return  # a rebuild: this event's message exists (and may be sent) already
        at = naive_utc(event.timestamp)
        undeliverable = message["recipient"] is None
        conn.execute(
            messages.insert().values(
                id=mid,
                position=position,
                **message,
                status="failed" if undeliverable else "pending",
                attempts=0,
                next_attempt_at=None if undeliverable else at,
                last_error="no e-mail address or phone number on file" if undeliverable else None,
                created_at=at,
            )
        )

    def clear(self, conn: sa.Connection) -> None:
        """Messages are a record of what was (to be) sent: a rebuild keeps them and adds what is missing."""


def list_messages(
    conn: sa.Connection,
    *,
    status: str | None = None,
    kind: str | None = None,
    customer_id: str | None = None,
    receivable_id: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    m = messages.c
    query = sa.select(messages).order_by(m.position, m.id).limit(limit)
    if status:
        query = query.where(m.status == status)
    if kind:
        query = query.where(m.kind == kind)
    if customer_id:
        query = query.where(m.customer_id == customer_id)
    if receivable_id:
        query = query.where(m.receivable_id == receivable_id)
    if after is not None:
        query = query.where(m.position > after)
    return [dict(r._mapping) for r in conn.execute(query)]
