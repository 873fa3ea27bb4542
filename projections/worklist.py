"""The collectors' worklist: open receivables that need someone to act, highest
priority first, each with why and what may be done next.

The projection keeps the facts (balance, due date, promise, broken promises,
last contact, customer tier); priority depends on `now`, so it is computed when
the list is read, by the documented formula in `priority` (docs/worklist.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from collections_es.domain import lifecycle
from collections_es.domain.customer import Customer
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable, is_legal_referral_suggested

from . import rows as rowlib
from .base import Item, Projection, metadata

CLOSED_STATES = lifecycle.CLOSED_STATES
# Events that mean someone reached the customer (a promise or plan is agreed with them).
CONTACT_EVENTS = (
    Receivable.ContactRecorded,
    Receivable.ReminderSent,
    Receivable.FollowUpStarted,
    Receivable.PromiseMade,
    Receivable.InstallmentPlanAgreed,
)

# The weights of the priority formula (docs/worklist.md explains each).
TIER_POINTS: dict[str, float] = {"A": 30.0, "B": 15.0}
DAYS_PAST_DUE_WEIGHT = 1 / 3  # a point per three days past due ...
DAYS_PAST_DUE_CAP = 365  # ... counted up to a year
AMOUNT_WEIGHT = 10.0  # times log10 of the balance in major units
BROKEN_PROMISE_POINTS = 40.0  # per broken promise ...
BROKEN_PROMISE_CAP = 3  # ... counted up to three
PROMISE_DUE_SOON_POINTS = 25.0  # promise or installment due today or tomorrow
PROMISE_OVERDUE_POINTS = 35.0  # its date passed, not covered, not yet declared broken
LEGAL_SUGGESTED_POINTS = 50.0
STALE_CONTACT_DAYS = 7
STALE_CONTACT_POINTS = 20.0
DISPUTED_FACTOR = 0.5  # a disputed item waits on its resolution

worklist = sa.Table(
    "rm_worklist",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("collector", sa.String(128), nullable=True, index=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("open", sa.Boolean, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("paid", sa.BigInteger, nullable=False),  # minor units
    sa.Column("balance", sa.BigInteger, nullable=False),
    # The promise or installment plan in force: [[date, minor units], ...] and what was paid before it.
    sa.Column("commitment", sa.Text, nullable=True),
    sa.Column("commitment_paid_before", sa.BigInteger, nullable=False),
    sa.Column("broken_promises", sa.Integer, nullable=False),
    sa.Column("last_contact_at", sa.DateTime(), nullable=True),  # naive UTC
    sa.Column("disputed", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

tiers = sa.Table(
    "rm_worklist_customers",
    metadata,
    sa.Column("aggregate_id", sa.String(36), primary_key=True),  # the Customer aggregate's id
    sa.Column("customer_id", sa.String(128), nullable=False, unique=True),
    sa.Column("tier", sa.String(32), nullable=False),
)


class Worklist(Projection):
    name = "worklist"
    tables = (worklist, tiers)

    @property
    def handles(self) -> Sequence[type]:
        return [*Receivable.event_classes(), Customer.Registered, Customer.Updated]

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        receivable_events = [e for e, _ in batch if isinstance(e, Receivable.Event)]
        known = rowlib.load(
            conn, worklist, {str(e.originator_id) for e in receivable_events if not isinstance(e, Receivable.Issued)}
        )
        existing = set(known)
        customer_events = [e for e, _ in batch if isinstance(e, Customer.Registered | Customer.Updated)]
        customers = rowlib.load(
            conn, tiers, {str(e.originator_id) for e in customer_events if isinstance(e, Customer.Updated)}, key="aggregate_id"
        )
        known_customers = set(customers)
        for event, _ in batch:
            if isinstance(event, Receivable.Event):
                self._evolve(known, event)
        for event in customer_events:
            cid = str(event.originator_id)
            if isinstance(event, Customer.Registered):
                customers[cid] = {"aggregate_id": cid, "customer_id": event.customer_id, "tier": event.tier}
            elif "tier" in event.changes:
                customers[cid]["tier"] = event.changes["tier"]
        rowlib.save(conn, worklist, known, existing)
        rowlib.save(conn, tiers, customers, known_customers, key="aggregate_id")

    @staticmethod
    def _evolve(known: dict[str, dict[str, Any]], event: Any) -> None:
        rid = str(event.originator_id)
        if isinstance(event, Receivable.Issued):
            known[rid] = row = {
                "id": rid,
                "invoice_number": event.invoice_number,
                "customer_id": event.customer_id,
                "collector": event.collector,
                "currency": event.currency,
                "timezone": event.timezone,
                "due_on": event.due_on,
                "paid": 0,
                "balance": rowlib.to_minor(event.amount, event.currency),
                "commitment": None,
                "commitment_paid_before": 0,
                "broken_promises": 0,
                "last_contact_at": None,
                "disputed": False,
            }
        else:
            row = known[rid]
        currency = row["currency"]
        if _is_contact(event):
            # When the contact took place (logged later, perhaps), never moving the last one back.
            at = rowlib.naive_utc(getattr(event, "contact_at", event.timestamp))
            row["last_contact_at"] = max(at, row["last_contact_at"] or at)
        if isinstance(event, Receivable.PaymentRecorded):
            amount = rowlib.to_minor(event.amount, currency)
            row["paid"] += amount
            row["balance"] -= amount
        elif isinstance(event, Receivable.PromiseMade):
            row["commitment"] = json.dumps([[event.promised_on.isoformat(), rowlib.to_minor(event.amount, currency)]])
            row["commitment_paid_before"] = row["paid"]
        elif isinstance(event, Receivable.InstallmentPlanAgreed):
            plan = [[i["due_on"].isoformat(), rowlib.to_minor(i["amount"], currency)] for i in event.installments]
            row["commitment"] = json.dumps(plan)
            row["commitment_paid_before"] = row["paid"]
        elif isinstance(event, Receivable.PromiseBroken):
            row["broken_promises"] += 1
            row["commitment"] = None
        elif isinstance(event, Receivable.PromiseKept):
            row["commitment"] = None
        elif isinstance(event, Receivable.WriteOffApproved):
            row["balance"] = 0
        elif isinstance(event, Receivable.DisputeRaised):
            row["disputed"] = True
        elif isinstance(event, Receivable.DisputeResolved):
            row["disputed"] = False
            if event.adjusted_amount is not None:
                row["balance"] = rowlib.to_minor(event.adjusted_amount, currency) - row["paid"]
        elif isinstance(event, Receivable.CollectorAssigned):
            row["collector"] = event.collector
        if event.state_after in CLOSED_STATES or row["balance"] <= 0:
            row["commitment"] = None
        row["state"] = event.state_after
        row["open"] = event.state_after not in CLOSED_STATES and row["balance"] > 0
        row["version"] = event.originator_version


def _is_contact(event: Any) -> bool:
    """Someone reached the customer (a follow-up started without a channel reached no one)."""
    return isinstance(event, CONTACT_EVENTS) and not (isinstance(event, Receivable.FollowUpStarted) and event.channel is None)


# ---- the priority formula ------------------------------------------------------


@dataclass
class Scored:
    score: float
    reasons: list[str] = field(default_factory=list)
    days_past_due: int = 0


def _next_commitment(row: dict[str, Any]) -> tuple[date, int] | None:
    """The date and amount still owed of the first promise/installment not yet covered."""
    if not row["commitment"]:
        return None
    paid = row["paid"] - row["commitment_paid_before"]
    owed = 0
    for on, amount in json.loads(row["commitment"]):
        owed += amount
        if paid < owed:
            return date.fromisoformat(on), owed - paid
    return None


def priority(row: dict[str, Any], tier: str | None, now: datetime, policy: CollectionPolicy) -> Scored | None:
    """How urgently an open receivable needs a collector now; None when nothing is to be done.

    score = days past due / 3 (up to 365 days)
          + 10 × log10(balance in major units)
          + tier points (A 30, B 15, others 0)
          + 40 per broken promise (up to 3)
          + 25 if a promise or installment falls due today or tomorrow,
            or 35 if its date has passed and it is not covered
          + 50 if a legal referral is suggested by the policy
          + 20 if past due and no contact for 7 days or more
      then halved while the receivable is disputed.
    """
    today = rowlib.local_date(now, row["timezone"])
    days_past_due = max(0, (today - row["due_on"]).days)
    commitment = _next_commitment(row)
    due_soon = commitment is not None and commitment[0] <= today + timedelta(days=1)
    if days_past_due == 0 and not due_soon and row["state"] != "due":
        return None  # not yet due: the scheduled reminder takes care of it
    currency = row["currency"]
    scored = Scored(0.0, days_past_due=days_past_due)
    if commitment is not None and commitment[0] < today:
        scored.score += PROMISE_OVERDUE_POINTS
        scored.reasons.append(f"promise of {commitment[0].isoformat()} not kept ({_days(today - commitment[0])} late)")
    elif commitment is not None and due_soon:
        scored.score += PROMISE_DUE_SOON_POINTS
        scored.reasons.append("promise due today" if commitment[0] == today else "promise due tomorrow")
    if row["broken_promises"]:
        scored.score += BROKEN_PROMISE_POINTS * min(row["broken_promises"], BROKEN_PROMISE_CAP)
        scored.reasons.append("broken promise" if row["broken_promises"] == 1 else f"{row['broken_promises']} broken promises")
    if is_legal_referral_suggested(row["state"], days_past_due, policy):
        scored.score += LEGAL_SUGGESTED_POINTS
        scored.reasons.append("legal referral suggested")
    if days_past_due:
        scored.score += min(days_past_due, DAYS_PAST_DUE_CAP) * DAYS_PAST_DUE_WEIGHT
        last = row["last_contact_at"]
        silent = None if last is None else (today - rowlib.local_date(last.replace(tzinfo=UTC), row["timezone"])).days
        if silent is None or silent >= STALE_CONTACT_DAYS:
            scored.score += STALE_CONTACT_POINTS
            contact = "no contact yet" if silent is None else f"no contact in {_days(timedelta(days=silent))}"
            scored.reasons.append(f"{_days(timedelta(days=days_past_due))} past due, {contact}")
        else:
            scored.reasons.append(f"{_days(timedelta(days=days_past_due))} past due")
    elif row["state"] == "due":
        scored.reasons.append("falls due today")
    balance = rowlib.from_minor(row["balance"], currency)
    if balance >= 1:
        scored.score += AMOUNT_WEIGHT * math.log10(balance)
    scored.score += TIER_POINTS.get(tier or "", 0.0)
    if row["disputed"]:
        scored.score *= DISPUTED_FACTOR
        scored.reasons.append("disputed: waiting on its resolution")
    scored.score = round(scored.score, 2)
    return scored


def _days(delta: timedelta) -> str:
    return "1 day" if delta.days == 1 else f"{delta.days} days"


def items_for(conn: sa.Connection, *, collector: str | None, now: datetime, policy: CollectionPolicy) -> list[dict[str, Any]]:
    """Open receivables needing action (of one collector, or everyone's), highest priority first."""
    w = worklist.c
    query = (
        sa.select(worklist, tiers.c.tier)
        .select_from(worklist.outerjoin(tiers, tiers.c.customer_id == w.customer_id))
        .where(w.open.is_(True))
        # Anything not due for two more days (in any zone) needs action only for a promise.
        .where(sa.or_(w.due_on <= (now + timedelta(days=2)).date(), w.commitment.is_not(None)))
    )
    if collector is not None:
        query = query.where(w.collector == collector)
    out = []
    for row in conn.execute(query):
        data = dict(row._mapping)
        scored = priority(data, data["tier"], now, policy)
        if scored is None:
            continue
        out.append({**data, "priority": scored.score, "reasons": scored.reasons, "days_past_due": scored.days_past_due})
    out.sort(key=lambda r: (-r["priority"], -r["balance"], r["due_on"], r["id"]))
    return out
