"""After collection: revisits owed and made, complaints, and the reasons for non-payment.

One read model (ADR 0057, ADR 0058) fed by receivable events, the customer's
revisits and tier, and the policy book:

- `af_revisits_owed`: each settlement that owes the customer a revisit (by the tier
  the customer had and the policy in force when it was settled), and when a revisit
  made after it was recorded. The worklist lists those owed today and not yet made.
- `af_revisits`: each revisit, its satisfaction score, and the collector it is counted
  for (who collected the customer's last settled receivable before it).
- `af_complaints`: each complaint, its outcome, and the collector it concerns (who made
  the contact it is about, else the receivable's collector then).
- `af_acts`: each contact and dispute, with the reason's code, the balance and the
  customer's tier at that moment: what the reasons report counts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.cipher import SealedText
from collections_es.domain import aftercare
from collections_es.domain.customer import Customer
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.policy_book import PolicyBook
from collections_es.domain.receivable import Receivable
from collections_es.domain.strategy import effective

from . import rows as rowlib
from .base import Item, Projection, metadata

SETTLED = "settled"
CUSTOMER_EVENTS = (Customer.Registered, Customer.Updated, Customer.RevisitRecorded)

policies = sa.Table(
    "af_policies",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
)

customers = sa.Table(
    "af_customers",
    metadata,
    sa.Column("aggregate_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False, unique=True),
    sa.Column("tier", sa.String(32), nullable=False),
    # Who collected the customer's last settled receivable: a revisit's satisfaction counts for them.
    sa.Column("last_settled_collector", sa.String(128), nullable=True),
)

receivables = sa.Table(
    "af_receivables",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("collector", sa.String(128), nullable=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # minor units, after a dispute's adjustment
    sa.Column("paid", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("latest_reason", sa.String(64), nullable=True),  # the last reason's code recorded on it
)

acts = sa.Table(
    "af_acts",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),  # contact | dispute
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("tier", sa.String(32), nullable=True),
    sa.Column("collector", sa.String(128), nullable=True),  # the receivable's, then
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("reason", sa.String(64), nullable=True),  # the vocabulary's code, or `unclassified`
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),  # minor units, when it was recorded
)

revisits_owed = sa.Table(
    "af_revisits_owed",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("collector", sa.String(128), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("settled_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("owed_on", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("revisited_at", sa.DateTime, nullable=True),  # the first revisit after the settlement
)

revisits = sa.Table(
    "af_revisits",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("satisfaction", sa.Integer, nullable=False),
    sa.Column("collector", sa.String(128), nullable=True, index=True),
)

complaints = sa.Table(
    "af_complaints",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("complaint", sa.Integer, primary_key=True, autoincrement=False),  # its event's version
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("collector", sa.String(128), nullable=True, index=True),
    sa.Column("about_version", sa.Integer, nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("text", SealedText, nullable=False),  # free text may quote contact details (ADR 0030)
    sa.Column("recorded_at", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("recorded_by", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("action", SealedText, nullable=True),
    sa.Column("resolved_at", sa.DateTime, nullable=True),
    sa.Column("resolved_by", sa.String(128), nullable=True),
)


class Aftercare(Projection):
    name = "aftercare"
    tables = (policies, customers, receivables, acts, revisits_owed, revisits, complaints)

    def __init__(self) -> None:
        self._policies: dict[str, CollectionPolicy] = {}  # versions never change once adopted

    @property
    def handles(self) -> Sequence[type]:
        return [PolicyBook.Adopted, *CUSTOMER_EVENTS, *Receivable.event_classes()]

    def clear(self, conn: sa.Connection) -> None:
        super().clear(conn)
        self._policies = {}

    def _policy(self, conn: sa.Connection, version: str) -> CollectionPolicy | None:
        if version not in self._policies:
            document = conn.execute(sa.select(policies.c.document).where(policies.c.version == version)).scalar()
            if document is None:
                return None
            self._policies[version] = CollectionPolicy.model_validate_json(document)
        return self._policies[version]

    def apply_batch(self, conn: sa.Connection, items: list[Item], prepared: Any) -> None:
        events = [e for e, _ in items]
        adopted = [e for e in events if isinstance(e, PolicyBook.Adopted)]
        if adopted:
            rowlib.upsert(conn, policies, ["version"], [{"version": e.version, "document": json.dumps(e.document)} for e in adopted])
        rows = rowlib.load(
            conn, receivables,
            {str(e.originator_id) for e in events if isinstance(e, Receivable.Event) and not isinstance(e, Receivable.Issued)},
        )
        existing = set(rows)
        wanted = {e.customer_id for e in events if isinstance(e, Receivable.Issued)} | {r["customer_id"] for r in rows.values()}
        people = {r["aggregate_id"]: r for r in rowlib.select_in(conn, customers, "customer_id", wanted)}
        people |= rowlib.load(
            conn, customers, {str(e.originator_id) for e in events if isinstance(e, CUSTOMER_EVENTS)}, key="aggregate_id"
        )
        people_before = set(people)
        by_customer = {r["customer_id"]: r for r in people.values()}
        batch = _Batch(conn, self, rows, people, by_customer)
        for event in events:
            batch.apply(event)
        rowlib.save(conn, receivables, rows, existing)
        rowlib.save(conn, customers, people, people_before, key="aggregate_id")
        batch.flush()


class _Batch:
    """One batch's writes: rows evolved in memory, new rows collected, rare updates done at once."""

    def __init__(self, conn: sa.Connection, projection: Aftercare, rows: dict[str, Any], people: dict[str, Any],
                 by_customer: dict[str, Any]) -> None:
        self.conn = conn
        self.projection = projection
        self.rows = rows
        self.people = people
        self.by_customer = by_customer
        self.acts: list[dict[str, Any]] = []
        self.owed: list[dict[str, Any]] = []
        self.revisits: list[dict[str, Any]] = []

    def apply(self, event: Any) -> None:
        if isinstance(event, CUSTOMER_EVENTS):
            self.customer(event)
        elif isinstance(event, Receivable.Event):
            self.receivable(event)

    def customer(self, event: Any) -> None:
        aid = str(event.originator_id)
        if isinstance(event, Customer.Registered):
            self.people[aid] = row = {"aggregate_id": aid, "customer_id": event.customer_id, "tier": event.tier,
                                      "last_settled_collector": None}
            self.by_customer[event.customer_id] = row
        elif isinstance(event, Customer.Updated) and "tier" in event.changes and aid in self.people:
            self.people[aid]["tier"] = event.changes["tier"]
        elif isinstance(event, Customer.RevisitRecorded) and aid in self.people:
            person = self.people[aid]
            at = rowlib.naive_utc(event.occurred_at)
            collector = person["last_settled_collector"] or (event.actor_id if event.actor_role == "collector" else None)
            self.revisits.append({
                "customer_id": person["customer_id"], "version": event.originator_version, "occurred_at": at,
                "actor": event.actor_id, "channel": event.channel, "satisfaction": event.satisfaction,
                "collector": collector,
            })
            self.flush_owed()  # the settlements of this batch are in the table before a revisit closes them
            o = revisits_owed.c
            self.conn.execute(
                revisits_owed.update()
                .where(o.customer_id == person["customer_id"], o.revisited_at.is_(None), o.settled_at <= at)
                .values(revisited_at=at)
            )

    def receivable(self, event: Any) -> None:
        rid = str(event.originator_id)
        if isinstance(event, Receivable.Issued):
            self.rows[rid] = {
                "id": rid, "invoice_number": event.invoice_number, "customer_id": event.customer_id,
                "collector": event.collector, "currency": event.currency, "timezone": event.timezone,
                "amount": rowlib.to_minor(event.amount, event.currency), "paid": 0, "state": event.state_after,
                "latest_reason": None,
            }
        row = self.rows.get(rid)
        if row is None:
            return
        currency = row["currency"]
        if isinstance(event, Receivable.PaymentRecorded):
            row["paid"] += rowlib.to_minor(event.amount, currency)
        elif isinstance(event, Receivable.DisputeResolved) and event.adjusted_amount is not None:
            row["amount"] = rowlib.to_minor(event.adjusted_amount, currency)
        elif isinstance(event, Receivable.WriteOffApproved):
            row["amount"] = row["paid"]
        elif isinstance(event, Receivable.CollectorAssigned):
            row["collector"] = event.collector
        elif isinstance(event, Receivable.ContactRecorded | Receivable.DisputeRaised):
            self.act(event, row)
        elif isinstance(event, Receivable.ComplaintRecorded):
            self.complaint(event, row)
        elif isinstance(event, Receivable.ComplaintResolved):
            self.flush()
            c = complaints.c
            self.conn.execute(
                complaints.update().where(c.receivable_id == rid, c.complaint == event.complaint).values(
                    outcome=event.outcome, action=event.action, resolved_at=rowlib.naive_utc(event.timestamp),
                    resolved_by=event.actor_id,
                )
            )
        if event.state_after == SETTLED and row["state"] != SETTLED:
            self.settled(event, row)
        row["state"] = event.state_after

    def _tier(self, customer_id: str) -> str | None:
        person = self.by_customer.get(customer_id)
        return None if person is None else person["tier"]

    def act(self, event: Any, row: dict[str, Any]) -> None:
        contact = isinstance(event, Receivable.ContactRecorded)
        code = getattr(event, "reason_code", None)
        if code is None and event.reason_for_non_payment:
            # Recorded before the vocabulary: the same words classified by the policy of its day (ADR 0058).
            policy = self.projection._policy(self.conn, event.policy_version)
            code = aftercare.classify_reason(event.reason_for_non_payment, policy) if policy else aftercare.UNCLASSIFIED
        at = event.contact_at if contact else event.timestamp
        self.acts.append({
            "receivable_id": row["id"], "version": event.originator_version, "kind": "contact" if contact else "dispute",
            "customer_id": row["customer_id"], "tier": self._tier(row["customer_id"]), "collector": row["collector"],
            "actor": event.actor_id, "role": event.actor_role, "occurred_at": rowlib.naive_utc(at), "reason": code,
            "currency": row["currency"], "balance": row["amount"] - row["paid"],
        })
        if code is not None:
            row["latest_reason"] = code

    def complaint(self, event: Any, row: dict[str, Any]) -> None:
        collector = row["collector"]
        if event.about_version is not None:
            self.flush()
            about = self.conn.execute(
                sa.select(acts.c.actor, acts.c.role, acts.c.collector).where(
                    acts.c.receivable_id == row["id"], acts.c.version == event.about_version
                )
            ).first()
            if about is not None:
                collector = about.actor if about.role == "collector" else about.collector
        self.conn.execute(complaints.insert().values(
            receivable_id=row["id"], complaint=event.originator_version, invoice_number=row["invoice_number"],
            customer_id=row["customer_id"], collector=collector, about_version=event.about_version,
            channel=event.channel, severity=event.severity, text=event.text,
            recorded_at=rowlib.naive_utc(event.timestamp), recorded_by=event.actor_id,
        ))

    def settled(self, event: Any, row: dict[str, Any]) -> None:
        person = self.by_customer.get(row["customer_id"])
        if person is not None:
            person["last_settled_collector"] = row["collector"]
        policy = self.projection._policy(self.conn, event.policy_version)
        if policy is None:
            return
        policy = effective(policy, event.strategy)  # a strategy may owe revisits of its own (ADR 0050)
        owed = aftercare.revisit_owed(event.timestamp, row["timezone"], self._tier(row["customer_id"]), policy)
        if owed is not None:
            self.owed.append({
                "receivable_id": row["id"], "invoice_number": row["invoice_number"], "customer_id": row["customer_id"],
                "collector": row["collector"], "timezone": row["timezone"], "settled_at": rowlib.naive_utc(event.timestamp),
                "owed_on": owed.owed_on, "last_day": owed.last_day, "revisited_at": None,
            })

    def flush_owed(self) -> None:
        if self.owed:
            self.conn.execute(revisits_owed.insert(), self.owed)
            self.owed = []

    def flush(self) -> None:
        if self.acts:
            self.conn.execute(acts.insert(), self.acts)
            self.acts = []
        if self.revisits:
            self.conn.execute(revisits.insert(), self.revisits)
            self.revisits = []
        self.flush_owed()


# ---- reading -------------------------------------------------------------------


def revisits_due(conn: sa.Connection, *, now: datetime, collector: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Revisits owed by today (each in its customer's days) and not yet made, the oldest owed first."""
    o = revisits_owed.c
    query = sa.select(revisits_owed).where(o.revisited_at.is_(None)).order_by(o.owed_on, o.receivable_id)
    if collector is not None:
        query = query.where(o.collector == collector)
    out = []
    # The earliest any zone's today can be is a day before UTC's; each row is checked in its own zone.
    horizon = now.astimezone(UTC).date().toordinal() + 1
    for row in conn.execute(query.where(o.owed_on <= date.fromordinal(horizon))):
        data = dict(row._mapping)
        if data["owed_on"] <= rowlib.local_date(now, data["timezone"]):
            out.append(data)
            if len(out) >= limit:
                break
    return out


def latest_reasons(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str | None]:
    """Each receivable's latest reason for non-payment (its code)."""
    return {r["id"]: r["latest_reason"] for r in rowlib.select_in(conn, receivables, "id", ids)}


def list_complaints(
    conn: sa.Connection, *, collector: str | None = None, customer_id: str | None = None,
    receivable_id: str | None = None, open_only: bool = False, start: datetime | None = None,
    end: datetime | None = None, limit: int = 500,
) -> list[dict[str, Any]]:
    """Complaints, oldest first, filtered."""
    c = complaints.c
    query = sa.select(complaints).order_by(c.recorded_at, c.receivable_id, c.complaint).limit(limit)
    for column, value in ((c.collector, collector), (c.customer_id, customer_id), (c.receivable_id, receivable_id)):
        if value is not None:
            query = query.where(column == value)
    if open_only:
        query = query.where(c.outcome.is_(None))
    if start is not None:
        query = query.where(c.recorded_at >= rowlib.naive_utc(start))
    if end is not None:
        query = query.where(c.recorded_at < rowlib.naive_utc(end))
    return [dict(r._mapping) for r in conn.execute(query)]


def complaint_counts(conn: sa.Connection, *, start: datetime, end: datetime, collector: str | None = None) -> dict[str | None, dict[str, int]]:
    """Per collector, complaints recorded in [start, end): received, upheld, not upheld, open."""
    c = complaints.c
    query = sa.select(c.collector, c.outcome, sa.func.count()).where(
        c.recorded_at >= rowlib.naive_utc(start), c.recorded_at < rowlib.naive_utc(end)
    ).group_by(c.collector, c.outcome)
    if collector is not None:
        query = query.where(c.collector == collector)
    out: dict[str | None, dict[str, int]] = defaultdict(lambda: {"received": 0, "upheld": 0, "not_upheld": 0, "open": 0})
    for who, outcome, count in conn.execute(query):
        out[who]["received"] += int(count)
        out[who][outcome or "open"] += int(count)
    return dict(out)


def satisfaction(conn: sa.Connection, *, start: datetime, end: datetime, collector: str | None = None) -> dict[str | None, dict[str, Any]]:
    """Per collector, the revisits made in [start, end) and their satisfaction: count, mean, each score's count."""
    v = revisits.c
    query = sa.select(v.collector, v.satisfaction, sa.func.count()).where(
        v.occurred_at >= rowlib.naive_utc(start), v.occurred_at < rowlib.naive_utc(end)
    ).group_by(v.collector, v.satisfaction)
    if collector is not None:
        query = query.where(v.collector == collector)
    scores: dict[str | None, dict[int, int]] = defaultdict(dict)
    for who, score, count in conn.execute(query):
        scores[who][int(score)] = int(count)
    return {who: satisfaction_figures(counts) for who, counts in scores.items()}


def satisfaction_figures(counts: dict[int, int]) -> dict[str, Any]:
    """Revisits, their mean score (2 places; None without any) and the count of each score 1–5."""
    total = sum(counts.values())
    mean = round(sum(s * n for s, n in counts.items()) / total, 2) if total else None
    return {"revisits": total, "mean": mean, "scores": {str(s): counts.get(s, 0) for s in aftercare.SATISFACTION_SCORES}}


def reasons_report(
    conn: sa.Connection, *, start: datetime, end: datetime, group_by: str, policy: CollectionPolicy
) -> list[dict[str, Any]]:
    """Per group (tier, collector or customer) and reason: the contacts and disputes recording it
    in [start, end), the receivables whose latest reason in the period it is, and their balances
    (per currency) when that latest reason was recorded."""
    a = acts.c
    rows = conn.execute(
        sa.select(a.receivable_id, a.version, a.tier, a.collector, a.customer_id, a.reason, a.currency, a.balance)
        .where(a.reason.is_not(None), a.occurred_at >= rowlib.naive_utc(start), a.occurred_at < rowlib.naive_utc(end))
        .order_by(a.occurred_at, a.receivable_id, a.version)
    ).all()
    groups: dict[str | None, dict[str, dict[str, Any]]] = defaultdict(dict)
    latest: dict[str, Any] = {}
    for row in rows:
        key = getattr(row, group_by if group_by != "customer" else "customer_id")
        figures = groups[key].setdefault(row.reason, {"count": 0, "receivables": 0, "balances": defaultdict(int)})
        figures["count"] += 1
        latest[row.receivable_id] = row  # ordered by time: the last one stays
    for row in latest.values():
        key = getattr(row, group_by if group_by != "customer" else "customer_id")
        figures = groups[key][row.reason]
        figures["receivables"] += 1
        figures["balances"][row.currency] += row.balance
    order = {code: i for i, code in enumerate(aftercare.vocabulary(policy))}
    out = []
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        reasons = [
            {"reason": code, "count": f["count"], "receivables": f["receivables"],
             "balances": [{"currency": cur, "balance": rowlib.from_minor(v, cur)} for cur, v in sorted(f["balances"].items())]}
            for code, f in sorted(groups[key].items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        ]
        out.append({"key": key, "reasons": reasons})
    return out
