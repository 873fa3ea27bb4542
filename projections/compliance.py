"""Compliance findings: every receivable's history judged by the detective rules.

For each receivable the projection keeps the facts the rules need (one small
JSON document) and, after each of its events, judges the whole history again
with `collections_es.domain.compliance.judge`, each event and obligation by the
policy version in force for it. The policy versions come from the policy
book's own events in the same log, so a rebuild needs nothing else.

A deadline finding ("no reminder by the end of 1 March") is stored with its
deadline as `occurred_at` as soon as the obligation arises; a later event that
meets the obligation in time removes it when the history is judged again.
Reading therefore keeps only the findings with `occurred_at <= now`: the same
as judging every history at `now` (`compliance.findings_as_of`), which a test
checks, without touching a receivable that has no new events.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from collections_es.adapters.cipher import SealedText
from collections_es.domain.compliance import REVISIT_FACT, SETTLED, Fact, Finding, fact_of, judge
from collections_es.domain.customer import Customer
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.policy_book import PolicyBook
from collections_es.domain.receivable import Receivable

from . import rows as rowlib
from .base import Item, Projection, metadata

policies = sa.Table(
    "cmp_policies",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
)

histories = sa.Table(
    "cmp_histories",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("facts", SealedText, nullable=False),  # overrides' reasons are free text
)

findings = sa.Table(
    "cmp_findings",
    metadata,
    # A receivable's findings are replaced together; `seq` orders them (judge's order).
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("invoice_number", sa.String(128), nullable=False),
    sa.Column("rule_id", sa.String(64), nullable=False, index=True),
    sa.Column("occurred_at", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("collector", sa.String(128), nullable=True, index=True),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("event_version", sa.Integer, nullable=True),
    sa.Column("overridden_rule_id", sa.String(128), nullable=True),
    sa.Column("detail", SealedText, nullable=False),  # quotes overrides' reasons
)

# After collection (ADR 0057): the customers' tiers, and the settled receivables whose revisit
# is not yet met, so a customer's revisit can enter those receivables' histories as a fact.
customer_tiers = sa.Table(
    "cmp_customers",
    metadata,
    sa.Column("aggregate_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False, unique=True),
    sa.Column("tier", sa.String(32), nullable=False),
)

settled_receivables = sa.Table(
    "cmp_settled",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False, index=True),
    sa.Column("settled_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("revisited", sa.Boolean, nullable=False),
)

_DATES = ("due_on", "issued_on", "paid_on", "filed_on")
_INSTANTS = ("delivered_at", "occurred_at", "until")  # occurred_at: a contact's, when logged after it took place; until: a hold's end


def _plain(value: Any) -> Any:
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _DATES:
        return date.fromisoformat(value)
    if key in _INSTANTS:
        return datetime.fromisoformat(value)
    if isinstance(value, list):
        return [{k: _typed(k, v) for k, v in item.items()} if isinstance(item, dict) else item for item in value]
    return value


def _encode(facts: Sequence[Fact]) -> str:
    def one(f: Fact) -> dict[str, Any]:
        data = {k: _plain(v) for k, v in f.data.items()}
        return {
            "type": f.type,
            "version": f.version,
            "at": f.at.isoformat(),
            "policy_version": f.policy_version,
            "actor": f.actor,
            "role": f.role,
            "state_after": f.state_after,
            "override": f.override,
            "data": data,
            **({"strategy": f.strategy} if f.strategy is not None else {}),
        }

    return json.dumps([one(f) for f in facts], separators=(",", ":"), ensure_ascii=False)


def _decode(text: str) -> list[Fact]:
    out = []
    for raw in json.loads(text):
        data = {k: _typed(k, v) for k, v in raw["data"].items()}
        out.append(Fact(**{**raw, "at": datetime.fromisoformat(raw["at"]), "data": data}))
    return out


class Compliance(Projection):
    name = "compliance"
    tables = (findings, histories, policies, customer_tiers, settled_receivables)

    def __init__(self) -> None:
        self._policies: dict[str, CollectionPolicy] = {}  # versions never change once adopted

    @property
    def handles(self) -> Sequence[type]:
        return [PolicyBook.Adopted, *Receivable.event_classes(), *_CUSTOMER_EVENTS]

    def clear(self, conn: sa.Connection) -> None:
        super().clear(conn)
        self._policies = {}

    def _policy_book(self, conn: sa.Connection) -> dict[str, CollectionPolicy]:
        for row in conn.execute(sa.select(policies).where(policies.c.version.not_in(list(self._policies)))):
            self._policies[row.version] = CollectionPolicy.model_validate_json(row.document)
        return self._policies

    def apply_batch(self, conn: sa.Connection, items: list[Item], prepared: Any) -> None:
        adopted = [e for e, _ in items if isinstance(e, PolicyBook.Adopted)]
        if adopted:
            rowlib.upsert(
                conn, policies, ["version"], [{"version": e.version, "document": json.dumps(e.document)} for e in adopted]
            )
        touched: dict[str, list[Fact]] = defaultdict(list)
        aftercare = _Aftercare(conn, items)
        for event, _ in items:
            if isinstance(event, Receivable.Event):
                touched[str(event.originator_id)].append(aftercare.fact(event, touched))
            elif isinstance(event, Customer.RevisitRecorded):
                for rid in aftercare.revisited(event):
                    touched[rid].append(revisit_fact(event))
            elif isinstance(event, _CUSTOMER_EVENTS):
                aftercare.customer(event)
        aftercare.save()
        if not touched:
            return
        book = self._policy_book(conn)
        stored = rowlib.load(conn, histories, touched)
        rows, new_findings = [], []
        for rid, new in touched.items():
            facts = (_decode(stored[rid]["facts"]) if rid in stored else []) + new
            rows.append({"id": rid, "facts": _encode(facts)})
            invoice = facts[0].data.get("invoice_number", "")
            new_findings += [_row(f, invoice, seq) for seq, f in enumerate(judge(facts, book, rid))]
        conn.execute(findings.delete().where(findings.c.receivable_id.in_(list(touched))))
        rowlib.upsert(conn, histories, ["id"], rows)
        if new_findings:
            conn.execute(findings.insert(), new_findings)


_CUSTOMER_EVENTS = (Customer.Registered, Customer.Updated, Customer.RevisitRecorded)


def revisit_fact(event: Any) -> Fact:
    """A customer's revisit as a fact of each settled receivable it may meet the revisit of.
    Its version is the customer's, negated: it never stands for one of the receivable's own."""
    return Fact(
        type=REVISIT_FACT,
        version=-event.originator_version,
        at=event.timestamp,
        policy_version=event.policy_version,
        actor=event.actor_id,
        role=event.actor_role,
        state_after=SETTLED,
        data={"occurred_at": event.occurred_at},
    )


class _Aftercare:
    """What the revisit rule needs besides a receivable's own events: the customer's tier when it
    is settled (given to the settling fact), and which settled receivables a revisit reaches."""

    def __init__(self, conn: sa.Connection, items: list[Item]) -> None:
        self.conn = conn
        ids = {str(e.originator_id) for e, _ in items if isinstance(e, _CUSTOMER_EVENTS)}
        self.people = rowlib.load(conn, customer_tiers, ids, key="aggregate_id")
        self.people_before = set(self.people)
        self.new_settled: list[dict[str, Any]] = []
        self.revisited_now: set[str] = set()
        self.settled_seen: set[str] = set()
        self.issued: dict[str, str] = {}  # receivable id -> customer id, for those issued in the batch

    def customer(self, event: Any) -> None:
        aid = str(event.originator_id)
        if isinstance(event, Customer.Registered):
            self.people[aid] = {"aggregate_id": aid, "customer_id": event.customer_id, "tier": event.tier}
        elif "tier" in event.changes and aid in self.people:
            self.people[aid]["tier"] = event.changes["tier"]

    def _tier(self, customer_id: str) -> str | None:
        for person in self.people.values():
            if person["customer_id"] == customer_id:
                return person["tier"]
        row = self.conn.execute(sa.select(customer_tiers).where(customer_tiers.c.customer_id == customer_id)).first()
        if row is None:
            return None
        self.people[row.aggregate_id] = dict(row._mapping)
        self.people_before.add(row.aggregate_id)
        return row.tier

    def fact(self, event: Any, touched: dict[str, list[Fact]]) -> Fact:
        """The event's fact; a settling one carries the customer's tier then."""
        found = fact_of(event)
        rid = str(event.originator_id)
        if isinstance(event, Receivable.Issued):
            self.issued[rid] = event.customer_id
        if found.state_after != SETTLED or rid in self.settled_seen:
            return found
        self.settled_seen.add(rid)
        if any(f.state_after == SETTLED for f in touched.get(rid, ())) or self._was_settled(rid):
            return found
        customer_id = self.issued.get(rid) or self._customer_of(rid)
        if customer_id is None:
            return found
        self.new_settled.append({
            "receivable_id": rid, "customer_id": customer_id, "settled_at": rowlib.naive_utc(found.at), "revisited": False,
        })
        return replace(found, data={**found.data, "tier": self._tier(customer_id)})

    def _was_settled(self, rid: str) -> bool:
        return self.conn.execute(
            sa.select(settled_receivables.c.receivable_id).where(settled_receivables.c.receivable_id == rid)
        ).first() is not None

    def _customer_of(self, rid: str) -> str | None:
        row = self.conn.execute(sa.select(histories.c.facts).where(histories.c.id == rid)).first()
        return None if row is None else _decode(row.facts)[0].data.get("customer_id")

    def revisited(self, event: Any) -> list[str]:
        """The receivables settled before it took place whose revisit none met yet; marked met."""
        person = self.people.get(str(event.originator_id))
        if person is None:
            return []
        cid = person["customer_id"]
        at = rowlib.naive_utc(event.occurred_at)
        s = settled_receivables.c
        stored = self.conn.execute(
            sa.select(s.receivable_id).where(s.customer_id == cid, s.revisited.is_(False), s.settled_at <= at)
        ).scalars().all()
        fresh = []
        for r in self.new_settled:
            if r["customer_id"] == cid and not r["revisited"] and r["settled_at"] <= at:
                r["revisited"] = True
                fresh.append(r["receivable_id"])
        self.revisited_now.update(stored)
        return [*stored, *fresh]

    def save(self) -> None:
        rowlib.save(self.conn, customer_tiers, self.people, self.people_before, key="aggregate_id")
        if self.new_settled:
            self.conn.execute(settled_receivables.insert(), self.new_settled)
        if self.revisited_now:
            s = settled_receivables.c
            self.conn.execute(
                settled_receivables.update().where(s.receivable_id.in_(sorted(self.revisited_now))).values(revisited=True)
            )


def _row(f: Finding, invoice: str, seq: int) -> dict[str, Any]:
    return {
        "receivable_id": f.receivable_id,
        "seq": seq,
        "invoice_number": invoice,
        "rule_id": f.rule_id,
        "occurred_at": rowlib.naive_utc(f.occurred_at),
        "collector": f.collector,
        "actor": f.actor,
        "policy_version": f.policy_version,
        "event_version": f.event_version,
        "overridden_rule_id": f.overridden_rule_id,
        "detail": f.detail,
    }


# ---- reading -------------------------------------------------------------------


def _where(
    query: Any,
    *,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    collector: str | None = None,
    rule_id: str | None = None,
    receivable_id: str | None = None,
) -> Any:
    c = findings.c
    query = query.where(c.occurred_at <= rowlib.naive_utc(now))
    if start is not None:
        query = query.where(c.occurred_at >= rowlib.naive_utc(start))
    if end is not None:
        query = query.where(c.occurred_at < rowlib.naive_utc(end))
    if collector is not None:
        query = query.where(c.collector == collector)
    if rule_id is not None:
        query = query.where(c.rule_id == rule_id)
    if receivable_id is not None:
        query = query.where(c.receivable_id == receivable_id)
    return query


def list_findings(
    conn: sa.Connection, *, limit: int = 100, after: tuple[datetime, str, int] | None = None, **filters: Any
) -> list[dict[str, Any]]:
    """Findings as of `now` (a filter), oldest first; `after` is the (occurred_at,
    receivable_id, seq) of the last finding of the previous page."""
    c = findings.c
    query = _where(sa.select(findings), **filters).order_by(c.occurred_at, c.receivable_id, c.seq).limit(limit)
    if after is not None:
        key = sa.tuple_(c.occurred_at, c.receivable_id, c.seq)
        query = query.where(key > sa.tuple_(sa.literal(rowlib.naive_utc(after[0])), sa.literal(after[1]), sa.literal(after[2])))
    return [dict(r._mapping) for r in conn.execute(query)]


def cursor_of(row: dict[str, Any]) -> str:
    return f"{row['occurred_at'].isoformat()}|{row['receivable_id']}|{row['seq']}"


def parse_cursor(text: str) -> tuple[datetime, str, int]:
    """The key a `cursor_of` string names; ValueError if it is not one."""
    when, rid, seq = text.split("|")
    return datetime.fromisoformat(when), rid, int(seq)


def counts_by_collector(conn: sa.Connection, **filters: Any) -> dict[str | None, Counter[str]]:
    """Per collector, the number of findings of each rule."""
    c = findings.c
    query = _where(sa.select(c.collector, c.rule_id, sa.func.count()).group_by(c.collector, c.rule_id), **filters)
    out: dict[str | None, Counter[str]] = defaultdict(Counter)
    for collector, rule_id, count in conn.execute(query):
        out[collector][rule_id] = int(count)
    return out

