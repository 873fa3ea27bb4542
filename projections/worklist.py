"""The collectors' worklist: open receivables that need someone to act, highest
priority first, each with why and what may be done next.

The projection keeps the facts (balance, due date, promise, broken promises,
last contact, customer tier); priority depends on `now`, so it is computed when
the list is read, by the documented formula in `priority` (docs/worklist.md).

`priority` is the one definition of the score and its reasons. So that a read
does not score every open row in Python, `score_sql` states the same arithmetic
in SQL over facts the projection keeps ready for it (dates as day numbers, the
next commitment's day, the last contact's local day, the balance's points), with
each time zone's "today" passed in; the database orders and limits, and
`priority` scores and words only the rows shown (ADR 0048). A test checks the two
give the same scores, bit for bit before rounding, on both databases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

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
    sa.Column("collector", sa.String(128), nullable=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
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
    # Facts kept for scoring in SQL (score_sql), each derived from the columns above and
    # independent of `now`: dates as day numbers (date.toordinal) so SQL compares integers.
    sa.Column("due_day", sa.Integer, nullable=False),  # due_on
    sa.Column("commitment_day", sa.Integer, nullable=True),  # the first promise/installment not yet covered
    sa.Column("last_contact_day", sa.Integer, nullable=True),  # last_contact_at's date in the customer's zone
    sa.Column("amount_points", sa.Float, nullable=False),  # amount_points(balance): 10·log10, exactly as priority
    sa.Column("tier", sa.String(32), nullable=True),  # the customer's, as rm_worklist_customers has it now
    # The holds on collection (ADR 0052), [[scope, until (ISO instant) or null], ...]; whether
    # one is in force depends on `now`, so a read works it out (`hold_of`).
    sa.Column("holds", sa.Text, nullable=True),
    # Everything score_sql reads, so a read scans this index alone (one zone at a time; a
    # collector's items, or everyone's) and visits the table for the rows it shows only.
    sa.Index(
        "ix_rm_worklist_scoring", "open", "timezone", "collector", "due_day", "commitment_day", "last_contact_day",
        "state", "broken_promises", "disputed", "amount_points", "tier", "id",
    ),
)

tiers = sa.Table(
    "rm_worklist_customers",
    metadata,
    sa.Column("aggregate_id", sa.String(36), primary_key=True),  # the Customer aggregate's id
    sa.Column("customer_id", sa.String(128), nullable=False, unique=True),
    sa.Column("tier", sa.String(32), nullable=False),
)


# The customers' time zones the receivables use, so a read computes each zone's "today" once.
zones = sa.Table(
    "rm_worklist_zones",
    metadata,
    sa.Column("timezone", sa.String(64), primary_key=True),
)


class Worklist(Projection):
    name = "worklist"
    tables = (worklist, tiers, zones)

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
        tier_before = {aid: row["tier"] for aid, row in customers.items()}
        for event, _ in batch:
            if isinstance(event, Receivable.Event):
                self._evolve(known, event)
        for event in customer_events:
            cid = str(event.originator_id)
            if isinstance(event, Customer.Registered):
                customers[cid] = {"aggregate_id": cid, "customer_id": event.customer_id, "tier": event.tier}
            elif "tier" in event.changes:
                customers[cid]["tier"] = event.changes["tier"]
        # A row carries its customer's tier as rm_worklist_customers has it after the batch:
        # new rows take it, and a customer registered or re-tiered passes it to all of theirs.
        retiered = {row["customer_id"]: row["tier"] for aid, row in customers.items() if tier_before.get(aid, "") != row["tier"]}
        new_rows = [row for rid, row in known.items() if rid not in existing]
        ask = {row["customer_id"] for row in new_rows} - set(retiered)
        tier_of = {row["customer_id"]: row["tier"] for row in rowlib.select_in(conn, tiers, "customer_id", ask)}
        for row in new_rows:
            row["tier"] = tier_of.get(row["customer_id"])
        for row in known.values():
            if row["customer_id"] in retiered:
                row["tier"] = retiered[row["customer_id"]]
        rowlib.save(conn, worklist, known, existing)
        rowlib.save(conn, tiers, customers, known_customers, key="aggregate_id")
        if retiered:
            conn.execute(
                worklist.update().where(worklist.c.customer_id == sa.bindparam("cid")).values(tier=sa.bindparam("new_tier")),
                [{"cid": cid, "new_tier": tier} for cid, tier in retiered.items()],
            )
        issued_in = {e.timezone for e in receivable_events if isinstance(e, Receivable.Issued)}
        if issued_in:
            seen = set(conn.execute(sa.select(zones.c.timezone).where(zones.c.timezone.in_(issued_in))).scalars())
            if issued_in - seen:
                conn.execute(zones.insert(), [{"timezone": zone} for zone in sorted(issued_in - seen)])

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
                "holds": None,
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
            if event.balance_after is not None:  # the receivable has charges (docs/charges.md)
                row["balance"] = rowlib.to_minor(event.balance_after, currency)
            elif event.adjusted_amount is not None:
                row["balance"] = rowlib.to_minor(event.adjusted_amount, currency) - row["paid"]
        elif isinstance(event, Receivable.CollectorAssigned):
            row["collector"] = event.collector
        elif isinstance(event, Receivable.HoldPlaced):
            kept = [h for h in json.loads(row.get("holds") or "[]") if h[0] != event.scope]
            row["holds"] = json.dumps([*kept, [event.scope, event.until.isoformat() if event.until else None]])
        elif isinstance(event, Receivable.HoldReleased):
            kept = [h for h in json.loads(row.get("holds") or "[]") if h[0] not in event.scopes]
            row["holds"] = json.dumps(kept) if kept else None
        elif isinstance(event, Receivable.ChargesAccrued):  # the balance is everything owed (docs/charges.md)
            row["balance"] += rowlib.to_minor(event.interest + event.fee, currency)
        elif isinstance(event, Receivable.ChargesWaived):
            row["balance"] -= rowlib.to_minor(event.amount, currency)
        if event.state_after in CLOSED_STATES or row["balance"] <= 0:
            row["commitment"] = None
        row["state"] = event.state_after
        row["open"] = event.state_after not in CLOSED_STATES and row["balance"] > 0
        row["version"] = event.originator_version
        derive(row)


def derive(row: dict[str, Any]) -> None:
    """Set the facts `score_sql` reads from the row's other columns (none depends on `now`)."""
    row["due_day"] = row["due_on"].toordinal()
    commitment = _next_commitment(row)
    row["commitment_day"] = None if commitment is None else commitment[0].toordinal()
    last = row["last_contact_at"]
    row["last_contact_day"] = None if last is None else rowlib.local_date(last.replace(tzinfo=UTC), row["timezone"]).toordinal()
    row["amount_points"] = amount_points(row["balance"], row["currency"])


def hold_of(row: dict[str, Any], now: datetime) -> tuple[bool, datetime | None]:
    """(on hold at `now`, when the holds in force end by themselves; None: until released)."""
    ends = []
    for _, until in json.loads(row.get("holds") or "[]"):
        end = None if until is None else datetime.fromisoformat(until)
        if end is None or end > now:
            ends.append(end)
    if not ends:
        return False, None
    return True, None if None in ends else max(e for e in ends if e is not None)


def _is_contact(event: Any) -> bool:
    """Someone reached the customer (a follow-up started without a channel reached no one)."""
    return isinstance(event, CONTACT_EVENTS) and not (isinstance(event, Receivable.FollowUpStarted) and event.channel is None)


# ---- the priority formula ------------------------------------------------------


@dataclass
class Scored:
    score: float
    reasons: list[str] = field(default_factory=list)
    days_past_due: int = 0
    unrounded: float = 0.0  # the score before rounding to 2 places (what score_sql computes)


def amount_points(balance: int, currency: str) -> float:
    """10 × log10(balance in major units), none below one unit (the projection stores it)."""
    major = rowlib.from_minor(balance, currency)
    return AMOUNT_WEIGHT * math.log10(major) if major >= 1 else 0.0


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
    scored.score += amount_points(row["balance"], currency)
    scored.score += TIER_POINTS.get(tier or "", 0.0)
    if row["disputed"]:
        scored.score *= DISPUTED_FACTOR
        scored.reasons.append("disputed: waiting on its resolution")
    scored.unrounded = scored.score
    scored.score = round(scored.score, 2)
    return scored


def _days(delta: timedelta) -> str:
    return "1 day" if delta.days == 1 else f"{delta.days} days"


# ---- the same formula in SQL, for ordering and limiting ------------------------------


def zone_days(conn: sa.Connection, now: datetime) -> dict[str, int]:
    """Each time zone the receivables use → today's date there, as a day number."""
    names = conn.execute(sa.select(zones.c.timezone).order_by(zones.c.timezone)).scalars()
    return {zone: rowlib.local_date(now, zone).toordinal() for zone in names}


@dataclass(frozen=True)
class ScoreSql:
    """`priority`'s arithmetic as SQL expressions over rm_worklist rows of one time zone."""

    listed: sa.ColumnElement[bool]  # priority(...) is not None
    unrounded: sa.ColumnElement[float]  # priority(...).unrounded, the same float


def score_sql(today: int, policy: CollectionPolicy) -> ScoreSql:
    """The formula of `priority` in SQL for rows whose zone's today is the day number `today`.

    Every term is added in the order `priority` adds it, with the same IEEE doubles: the
    whole-number terms are exact in any order, the days-past-due term is the day count
    times the same double 1/3 (bound as a parameter, not parsed from SQL text), the
    amount term is the stored float `amount_points`, then the tier's points; a disputed
    item is multiplied by 0.5 (exact). The unrounded result is therefore the very float
    `priority` rounds (tests/integration/test_worklist_scoring.py).
    """
    w = worklist.c
    day = sa.bindparam("today", today, type_=sa.Integer, unique=True)
    zero = _double(0.0)
    late = day - w.due_day  # days past due when positive
    past_due = w.due_day < day
    days_past_due = sa.case((past_due, late), else_=0)
    counted = sa.case((late >= DAYS_PAST_DUE_CAP, DAYS_PAST_DUE_CAP), else_=days_past_due)
    due_soon = w.commitment_day <= day + 1  # NULL (no commitment) is not due
    promise = sa.case(
        (w.commitment_day < day, _double(PROMISE_OVERDUE_POINTS)), (due_soon, _double(PROMISE_DUE_SOON_POINTS)), else_=zero
    )
    broken = sa.case(
        (w.broken_promises >= BROKEN_PROMISE_CAP, _double(BROKEN_PROMISE_POINTS * BROKEN_PROMISE_CAP)),
        else_=w.broken_promises * _double(BROKEN_PROMISE_POINTS),
    )
    legal_states = sorted(lifecycle.PRE_LEGAL_STATES)
    legal = sa.case(
        (sa.and_(w.state.in_(legal_states), days_past_due >= policy.legal_referral_suggested_after_days),
         _double(LEGAL_SUGGESTED_POINTS)),
        else_=zero,
    )
    silent = sa.or_(w.last_contact_day.is_(None), day - w.last_contact_day >= STALE_CONTACT_DAYS)
    stale = sa.case((sa.and_(past_due, silent), _double(STALE_CONTACT_POINTS)), else_=zero)
    tier = sa.case({name: _double(points) for name, points in TIER_POINTS.items()}, value=w.tier, else_=zero)
    total = ((((promise + broken + legal) + counted * _double(DAYS_PAST_DUE_WEIGHT)) + stale) + w.amount_points) + tier
    unrounded = total * sa.case((w.disputed.is_(True), _double(DISPUTED_FACTOR)), else_=_double(1.0))
    return ScoreSql(listed=sa.or_(past_due, due_soon, w.state == "due"), unrounded=unrounded)


class _Double(FunctionElement[float]):
    """A bound IEEE double: cast on PostgreSQL, so it never becomes numeric whatever the driver
    sends; as is on SQLite, which binds a Python float as a double (never parsed from text)."""

    type = sa.Double()
    name = "double"
    inherit_cache = True


@compiles(_Double)
def _compile_double(element: _Double, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_Double, "postgresql")
def _compile_double_pg(element: _Double, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE PRECISION)"


def _double(value: float) -> sa.ColumnElement[float]:
    return _Double(sa.bindparam(None, float(value), type_=sa.Double, unique=True))


def _scored(
    days: dict[str, int], collector: str | None, policy: CollectionPolicy, at_least: float | None = None
) -> sa.Subquery:
    """(id, sql_score) of every listed open item: one branch per time zone, each reading the
    scoring index over that zone's rows with the zone's today as a constant."""
    w = worklist.c
    branches = []
    for zone, today in days.items():
        scoring = score_sql(today, policy)
        branch = sa.select(w.id, scoring.unrounded.label("sql_score")).where(
            w.open.is_(True), w.timezone == zone, scoring.listed
        )
        if collector is not None:
            branch = branch.where(w.collector == collector)
        if at_least is not None:
            branch = branch.where(scoring.unrounded >= at_least)
        branches.append(branch)
    return (branches[0] if len(branches) == 1 else sa.union_all(*branches)).subquery("scored")


def sql_scores(conn: sa.Connection, *, collector: str | None, now: datetime, policy: CollectionPolicy) -> dict[str, float]:
    """Every listed item's unrounded score as SQL computes it (for tests and checks)."""
    days = zone_days(conn, now)
    if not days:
        return {}
    scored = _scored(days, collector, policy)
    return dict(conn.execute(sa.select(scored.c.id, scored.c.sql_score)).all())


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    """Today's order: priority (rounded to 2 places), then the larger balance, the earlier due date, the id."""
    return (-row["priority"], -row["balance"], row["due_on"], row["id"])


# Rows fetched beyond the limit, so a run of equal rounded scores at the limit is usually whole.
SLACK = 16
# Half a hundredth (what rounding to 2 places spans), and a little more.
HALF_STEP = 0.005 + 1e-6


def items_for(
    conn: sa.Connection, *, collector: str | None, now: datetime, policy: CollectionPolicy, limit: int | None = None
) -> list[dict[str, Any]]:
    """Open receivables needing action (of one collector, or everyone's), highest priority first;
    the first `limit` of them when given.

    The database scores every listed item (`score_sql`), orders by the unrounded score
    and returns the ids and scores of the first ones; the order shown is today's
    (`_order`: the rounded score, then balance, due date, id), so rows whose rounded
    score equals the last shown one's may lie just past those fetched: when the last
    one fetched could still round to that score, every item within half a hundredth of
    it is fetched too. Only the rows shown are read in full and scored by `priority`,
    which gives their reasons.
    """
    days = zone_days(conn, now)
    if not days or (limit is not None and limit <= 0):
        return []
    scored = _scored(days, collector, policy)
    query = sa.select(scored.c.id, scored.c.sql_score).order_by(scored.c.sql_score.desc(), scored.c.id)
    if limit is None:
        chosen = conn.execute(query).all()
    else:
        fetch = limit + max(SLACK, limit // 4)
        chosen = conn.execute(query.limit(fetch)).all()
        if len(chosen) == fetch and chosen[-1].sql_score >= round(chosen[limit - 1].sql_score, 2) - HALF_STEP:
            # The rounded score at the limit may run on past the rows fetched.
            wider = _scored(days, collector, policy, at_least=round(chosen[limit - 1].sql_score, 2) - HALF_STEP)
            chosen = conn.execute(sa.select(wider.c.id, wider.c.sql_score)).all()
    rows = {row["id"]: row for row in rowlib.select_in(conn, worklist, "id", (c.id for c in chosen))}
    for rid, sql_score in chosen:
        rows[rid]["priority"] = round(sql_score, 2)
    ordered = sorted(rows.values(), key=_order)[:limit]
    out = []
    for data in ordered:
        scored_row = priority(data, data["tier"], now, policy)
        if scored_row is None:  # never: score_sql lists exactly what priority scores (tested)
            continue
        on_hold, held_until = hold_of(data, now)
        out.append({**data, "priority": scored_row.score, "reasons": scored_row.reasons,
                    "days_past_due": scored_row.days_past_due, "on_hold": on_hold, "held_until": held_until})
    return out
