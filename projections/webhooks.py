"""Webhook deliveries: an outbox that follows the event log (ADR 0045).

Subscriptions (`webhook_subscriptions`) are configuration, not events: supervisors add
and delete them over the API; each keeps the log position at which it was made and
receives only events after it. The projection writes one delivery row per (subscription,
event) that matches, in the batch transaction that moves its tracking position; the row's
id derives from the subscription and the event (aggregate id and version), and `clear`
keeps the rows, so a rebuild or a second worker never makes a second delivery.

The credit hold's changes are not events of the log: the credit projection writes them to
`credit_hold_changes` (projections/credit.py), and `SqlDeliveries.collect_hold_changes`
turns them into deliveries of `Customer.CreditHoldChanged` up to the credit projection's
position, keeping a cursor of its own. Deliveries after that cursor wait, so a customer's
deliveries stay in log order whichever projection runs ahead.

`SqlDeliveries` is the sender's port onto these tables (`application.webhooks.DeliveryStore`):
due rows are claimed with a conditional UPDATE and a lease, and a delivery is due only
when no earlier one of the same subscription and receivable (or customer) is still
pending or being sent.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.cipher import SealedText
from collections_es.domain.customer import Customer
from collections_es.domain.receivable import Receivable
from collections_es.domain.trail import TRAIL_FIELDS

from . import rows as rowlib
from .base import Item, Projection, metadata, tracking
from .credit import hold_changes_between

DELIVERY_NAMESPACE = uuid.UUID("9d3c1b7a-2e4f-4a68-8b1d-6c5e4f3a2b19")
HOLD_CHANGED = "Customer.CreditHoldChanged"
HOLD_CURSOR = "webhooks.credit_holds"  # a row of projection_tracking: the hold changes collected so far
EVENT_CLASSES: tuple[type, ...] = (*Receivable.event_classes(), *Customer.event_classes())
EVENT_TYPES: tuple[str, ...] = (*(cls.__qualname__ for cls in EVENT_CLASSES), HOLD_CHANGED)
# Envelope fields of an event: in the body's envelope (or not at all), never in its `data`.
ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "originator_topic", "timestamp"}) | TRAIL_FIELDS
OPEN = ("pending", "sending")

subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # a JSON list of event type names, or ["*"]
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("secret", SealedText, nullable=False),  # encrypted when COLLECTIONS_CIPHER_KEY is set
    sa.Column("start_position", sa.BigInteger, nullable=False),  # events after this position are delivered
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("deleted_at", sa.DateTime(), nullable=True),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subscription_id", sa.String(36), nullable=False, index=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # 0: the event; 1: a hold change it caused
    sa.Column("ordering_key", sa.String(140), nullable=False),  # r:<receivable id> or c:<customer id>
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("receivable_id", sa.String(36), nullable=True),
    sa.Column("customer_id", sa.String(128), nullable=True),
    sa.Column("body", SealedText, nullable=False),  # the exact bytes sent (UTF-8 JSON); may hold contact details
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),  # every try, ever
    sa.Column("tries", sa.Integer, nullable=False),  # tries since it was (re)queued: `failed` after N
    sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
    sa.Column("lease_until", sa.DateTime(), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),  # the event's instant
    sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
    sa.Column("delivered_at", sa.DateTime(), nullable=True),
    sa.Index("ix_webhook_deliveries_order", "subscription_id", "ordering_key", "position", "seq"),
)

# Which customer each receivable (and customer aggregate) belongs to: for the body's `customer_id`.
subjects = sa.Table(
    "webhook_subjects",
    metadata,
    sa.Column("aggregate_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False),
)


def delivery_id(subscription_id: str, ref: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{subscription_id}:{ref}"))


def naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def plain(value: Any) -> Any:
    """JSON-ready: money as its exact decimal string, dates ISO, instants UTC with Z."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def event_body(event: Any, receivable_id: str | None, customer_id: str | None) -> dict[str, Any]:
    data = {f.name: plain(getattr(event, f.name)) for f in dataclasses.fields(event) if f.name not in ENVELOPE_FIELDS}
    body: dict[str, Any] = {"type": type(event).__qualname__}
    if receivable_id:
        body["receivable_id"] = receivable_id
    if customer_id:
        body["customer_id"] = customer_id
    return body | {"version": event.originator_version, "occurred_at": plain(event.timestamp), "data": data}


def hold_body(change: dict[str, Any]) -> dict[str, Any]:
    until = change["recent_write_off_until"]
    return {
        "type": HOLD_CHANGED,
        "customer_id": change["customer_id"],
        "version": change["version"],
        "occurred_at": plain(change["occurred_at"].replace(tzinfo=UTC)),
        "data": {
            "customer_id": change["customer_id"],
            "credit_hold": change["credit_hold"],
            "reasons": [r for r in change["reasons"].split(",") if r],
            "recent_write_off_until": until.isoformat() if until else None,
        },
    }


def wants(subscription: dict[str, Any], event_type: str, position: int) -> bool:
    events = subscription["event_list"]
    return position > subscription["start_position"] and ("*" in events or event_type in events)


def active_subscriptions(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(subscriptions).where(subscriptions.c.deleted_at.is_(None)).order_by(subscriptions.c.created_at))
    return [dict(r._mapping) | {"event_list": json.loads(r.events)} for r in rows]


def _insert_absent(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the deliveries not there yet (a rebuild, or hold changes collected again, adds nothing twice)."""
    if not rows:
        return
    ids = [r["id"] for r in rows]
    existing: set[str] = set()
    for i in range(0, len(ids), 500):
        existing |= set(conn.execute(sa.select(deliveries.c.id).where(deliveries.c.id.in_(ids[i : i + 500]))).scalars())
    new = [r for r in rows if r["id"] not in existing]
    if new:
        conn.execute(deliveries.insert(), new)


def _delivery(subscription_id: str, ref: str, position: int, seq: int, key: str, event_type: str,
              receivable_id: str | None, customer_id: str | None, body: str, at: datetime) -> dict[str, Any]:
    return {
        "id": delivery_id(subscription_id, ref),
        "subscription_id": subscription_id,
        "position": position,
        "seq": seq,
        "ordering_key": key,
        "event_type": event_type,
        "receivable_id": receivable_id,
        "customer_id": customer_id,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "tries": 0,
        "next_attempt_at": at,
        "lease_until": None,
        "last_status": None,
        "last_error": None,
        "created_at": at,
        "last_attempt_at": None,
        "delivered_at": None,
    }


class WebhookDeliveries(Projection):
    name = "webhooks"
    tables = (deliveries, subjects)
    shadowed = False  # its rows record what was sent: rebuilt in place (ADR 0065)

    @property
    def handles(self) -> Sequence[type]:
        return EVENT_CLASSES

    def apply_batch(self, conn: sa.Connection, items: list[Item], prepared: Any) -> None:
        owners = {
            str(e.originator_id): e.customer_id for e, _ in items if isinstance(e, Receivable.Issued | Customer.Registered)
        }
        if owners:
            known = {row["aggregate_id"] for row in rowlib.select_in(conn, subjects, "aggregate_id", owners)}
            new = [{"aggregate_id": k, "customer_id": v} for k, v in owners.items() if k not in known]
            if new:
                conn.execute(subjects.insert(), new)
        subs = active_subscriptions(conn)
        if not subs:
            return
        wanted = [(e, p) for e, p in items if any(wants(s, type(e).__qualname__, p) for s in subs)]
        missing = {str(e.originator_id) for e, _ in wanted} - set(owners)
        if missing:
            owners |= {r["aggregate_id"]: r["customer_id"] for r in rowlib.select_in(conn, subjects, "aggregate_id", missing)}
        out = []
        for event, position in wanted:
            aggregate_id = str(event.originator_id)
            receivable_id = aggregate_id if isinstance(event, Receivable.Event) else None
            customer_id = owners.get(aggregate_id)
            key = f"r:{receivable_id}" if receivable_id else f"c:{customer_id or aggregate_id}"
            body = encode(event_body(event, receivable_id, customer_id))
            event_type = type(event).__qualname__
            for s in subs:
                if wants(s, event_type, position):
                    out.append(_delivery(s["id"], f"{aggregate_id}:{event.originator_version}", position, 0, key,
                                         event_type, receivable_id, customer_id, body, naive_utc(event.timestamp)))
        _insert_absent(conn, out)

    def clear(self, conn: sa.Connection) -> None:
        """Deliveries are a record of what was (to be) sent: a rebuild keeps them and adds what is missing."""
        conn.execute(subjects.delete())


class SqlDeliveries:
    """The webhook sender's port (`application.webhooks.DeliveryStore`): subscriptions, the
    hold changes collected into deliveries, and due deliveries taken one sender at a time (`take`)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._held: dict[str, sa.Connection] = {}  # delivery id -> the transaction holding its lock
        metadata.create_all(engine, tables=[tracking, subscriptions, deliveries, subjects])
        with engine.begin() as conn:
            if conn.execute(sa.select(tracking.c.name).where(tracking.c.name == HOLD_CURSOR)).first() is None:
                conn.execute(tracking.insert().values(name=HOLD_CURSOR, position=0))

    # -- subscriptions ----------------------------------------------------------

    def add_subscription(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(subscriptions.insert().values(
                row | {"events": json.dumps(row["events"]), "created_at": naive_utc(row["created_at"])}
            ))

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.engine.execution_options(read_only=True).connect() as conn:
            return active_subscriptions(conn)

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        return next((s for s in self.subscriptions() if s["id"] == subscription_id), None)

    def delete_subscription(self, subscription_id: str, now: datetime) -> bool:
        """Mark it deleted and cancel what it has not delivered yet; False when there is none."""
        s, d = subscriptions.c, deliveries.c
        with self.engine.begin() as conn:
            done = conn.execute(
                subscriptions.update().where(s.id == subscription_id, s.deleted_at.is_(None)).values(deleted_at=naive_utc(now))
            ).rowcount
            conn.execute(
                deliveries.update()
                .where(d.subscription_id == subscription_id, d.status.in_(OPEN))
                .values(status="cancelled", next_attempt_at=None, lease_until=None)
            )
        return done == 1

    # -- the credit hold's changes ------------------------------------------------

    def collect_hold_changes(self, upto: int) -> int:
        """Deliveries for the hold changes of events up to position `upto` (the credit projection's);
        returns how many were written. Runs once per position range: the cursor moves in the same transaction."""
        with self.engine.begin() as conn:
            cursor = conn.execute(
                sa.select(tracking.c.position).where(tracking.c.name == HOLD_CURSOR).with_for_update()
            ).scalar_one()
            if upto <= cursor:
                return 0
            subs = [s for s in active_subscriptions(conn) if "*" in s["event_list"] or HOLD_CHANGED in s["event_list"]]
            out = []
            if subs:
                for change in hold_changes_between(conn, cursor, upto):
                    body = encode(hold_body(change))
                    for s in subs:
                        if change["position"] > s["start_position"]:
                            out.append(_delivery(s["id"], f"hold:{change['id']}", change["position"], 1,
                                                 f"c:{change['customer_id']}", HOLD_CHANGED, None,
                                                 change["customer_id"], body, change["occurred_at"]))
            _insert_absent(conn, out)
            conn.execute(tracking.update().where(tracking.c.name == HOLD_CURSOR).values(position=upto))
        return len(out)

    # -- sending ------------------------------------------------------------------

    def _due(self, now: datetime, only: str | None) -> sa.Select:
        d, s, at = deliveries.c, subscriptions.c, naive_utc(now)
        earlier = deliveries.alias("earlier")
        e = earlier.c
        blocked = sa.exists().where(
            e.subscription_id == d.subscription_id,
            e.ordering_key == d.ordering_key,
            e.status.in_(OPEN),
            sa.or_(e.position < d.position, sa.and_(e.position == d.position, e.seq < d.seq)),
        )
        cursor = sa.select(tracking.c.position).where(tracking.c.name == HOLD_CURSOR).scalar_subquery()
        query = (
            sa.select(deliveries, s.url, s.secret)
            .join(subscriptions, s.id == d.subscription_id)
            .where(
                s.deleted_at.is_(None),
                sa.or_(sa.and_(d.status == "pending", d.next_attempt_at <= at),
                       sa.and_(d.status == "sending", d.lease_until <= at)),
                d.position <= cursor,
                ~blocked,
            )
            .order_by(d.position, d.seq, d.id)
        )
        if only is not None:
            query = query.where(d.id == only)
        return query

    def due(self, now: datetime, limit: int, *, only: str | None = None) -> list[dict[str, Any]]:
        """Deliveries due at `now` (or whose sender's lease ran out), oldest first, each the earliest
        open one of its subscription and receivable (or customer), with the subscription's URL and secret."""
        with self.engine.execution_options(read_only=True).connect() as conn:
            return [dict(r._mapping) for r in conn.execute(self._due(now, only).limit(limit))]

    @contextmanager
    def take(self, now: datetime, until: datetime, *, only: str | None = None) -> Iterator[dict[str, Any] | None]:
        """The first due delivery no other sender holds, held until the block ends (None when there is none;
        ADR 0063). On PostgreSQL its row is locked FOR UPDATE SKIP LOCKED while it is sent: other senders
        pass over it, and the later deliveries of its receivable wait behind it (it is still open); a
        sender that dies lets go at once. On SQLite a conditional UPDATE and a lease claim it."""
        if self.engine.dialect.name != "postgresql":
            for row in self.due(now, 10, only=only):
                if self.claim(row, until):
                    yield row
                    return
            yield None
            return
        query = self._due(now, only).limit(1).with_for_update(skip_locked=True, of=deliveries)
        with self.engine.connect() as conn, conn.begin():
            found = conn.execute(query).first()
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
        """Take the delivery until `until`, unless another sender changed it first."""
        d = deliveries.c
        with self.engine.begin() as conn:
            return conn.execute(
                deliveries.update()
                .where(d.id == row["id"], d.status == row["status"], d.attempts == row["attempts"])
                .values(status="sending", lease_until=naive_utc(until))
            ).rowcount == 1

    def finish(self, delivery_id: str, status: str, *, attempts: int, tries: int, at: datetime,
               http_status: int | None, error: str | None, next_attempt_at: datetime | None = None) -> None:
        """The attempt's outcome, written only while the delivery is still ours (`sending`)."""
        values: dict[str, Any] = {
            "status": status,
            "attempts": attempts,
            "tries": tries,
            "lease_until": None,
            "last_attempt_at": naive_utc(at),
            "last_status": http_status,
            "last_error": error,
            "next_attempt_at": naive_utc(next_attempt_at) if next_attempt_at else None,
        }
        if status == "delivered":
            values["delivered_at"] = naive_utc(at)
        d = deliveries.c
        held = self._held.get(delivery_id)
        if held is not None:  # written in the transaction that holds its lock
            held.execute(deliveries.update().where(d.id == delivery_id).values(**values))
            return
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(d.id == delivery_id, d.status == "sending").values(**values))

    def requeue(self, subscription_id: str, delivery_id: str, now: datetime) -> bool:
        """Send it again (by hand): pending now, with a fresh count of tries; False when unknown or being sent."""
        d = deliveries.c
        # One a sender holds (locked while it is sent, on PostgreSQL) is being sent: passed over, not awaited.
        free = (sa.select(d.id).where(d.id == delivery_id, d.subscription_id == subscription_id, d.status != "sending")
                .with_for_update(skip_locked=True))
        with self.engine.begin() as conn:
            return conn.execute(
                deliveries.update()
                .where(d.id.in_(free.scalar_subquery()))
                .values(status="pending", tries=0, next_attempt_at=naive_utc(now), lease_until=None)
            ).rowcount == 1

    # -- the delivery log ---------------------------------------------------------

    def deliveries(self, subscription_id: str, *, status: str | None = None, after: tuple[int, int, str] | None = None,
                   limit: int = 50) -> list[dict[str, Any]]:
        d = deliveries.c
        query = sa.select(deliveries).where(d.subscription_id == subscription_id).order_by(d.position, d.seq, d.id).limit(limit)
        if status:
            query = query.where(d.status == status)
        if after is not None:
            position, seq, last = after
            query = query.where(sa.or_(d.position > position, sa.and_(d.position == position, d.seq > seq),
                                       sa.and_(d.position == position, d.seq == seq, d.id > last)))
        with self.engine.execution_options(read_only=True).connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def delivery(self, subscription_id: str, delivery_id: str) -> dict[str, Any] | None:
        d = deliveries.c
        with self.engine.execution_options(read_only=True).connect() as conn:
            row = conn.execute(sa.select(deliveries).where(d.id == delivery_id, d.subscription_id == subscription_id)).first()
        return dict(row._mapping) if row else None
