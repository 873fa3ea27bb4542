"""The Customer aggregate: the customer file the procedure asks for.

Personal data (PII) sits only in the fields named `contacts` and
`contact_persons` (events `Registered` and `ContactsChanged`), so it can be
encrypted at rest field by field later. Fields added after the first release
carry defaults: older events decode with them and verify unchanged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from . import aftercare, holds
from .aggregate import TrailedAggregate
from .calendar import check_timezone
from .errors import RuleViolationError
from .money import check_currency, to_money
from .policy import CHANNELS
from .strategy import CustomerFacts, hours_of, overlaps_windows
from .trail import Context

CUSTOMER_NAMESPACE = uuid.UUID("0f4d6a3e-8a37-4f0c-b6a5-7d0c1e2b9a44")
CONTACT_FIELDS: tuple[str, ...] = ("email", "phone", "address")
CONTACT_PERSON_FIELDS: tuple[str, ...] = ("name", "role", "email", "phone")
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
RATINGS: tuple[str, ...] = ("A", "B", "C", "D", "unrated")
NOTE_TOPICS: tuple[str, ...] = ("ability_to_pay", "willingness_to_pay")
# Profile fields a PATCH may change through `Updated` (contacts and credit limit have events of their own).
REVISITS_KEPT = 20
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
PROFILE_FIELDS: tuple[str, ...] = ("name", "timezone", "tier", "preferred_channel", "language", "credit_rating")
# What strategies are matched on (ADR 0050): changing one re-plans the customer's open receivables.
STRATEGY_FIELDS: tuple[str, ...] = ("tier", "segment", "strategy_override", "preferred_contact_hours")
# Profile fields a PATCH may set to null (remove).
REMOVABLE_FIELDS: frozenset[str] = frozenset({"credit_rating", "segment", "strategy_override", "preferred_contact_hours"})
MAX_CONTACT_HOURS = 6


def customer_uuid(customer_id: str) -> uuid.UUID:
    return uuid.uuid5(CUSTOMER_NAMESPACE, customer_id)


def _check_profile(field: str, value: Any) -> None:
    if field == "name" and not str(value).strip():
        raise RuleViolationError("field.required", "'name' must not be empty", field="name")
    if field == "timezone":
        check_timezone(value)
    if field == "preferred_channel" and value not in CHANNELS:
        raise RuleViolationError(
            "field.choice", f"'{value}' is not one of {', '.join(CHANNELS)}", field="preferred_channel"
        )
    if field == "language" and value not in LANGUAGES:
        raise RuleViolationError("field.choice", f"'{value}' is not one of {', '.join(LANGUAGES)}", field="language")
    if field == "credit_rating" and value is not None and value not in RATINGS:
        raise RuleViolationError(
            "field.choice", f"'{value}' is not one of {', '.join(RATINGS)}", field="credit_rating"
        )


def _check_strategy_fields(ctx: Context, field: str, value: Any) -> Any:
    """Segment, own strategy and preferred contact hours, checked against the policy in force."""
    if value is None:
        return None
    if field == "segment" and not (isinstance(value, str) and 0 < len(value.strip()) and len(value) <= 64):
        raise RuleViolationError("field.required", "'segment' must be 1 to 64 characters", field="segment")
    if field == "strategy_override" and ctx.policy.strategy(value) is None:
        known = ", ".join(s.id for s in ctx.policy.strategies) or "none"
        raise RuleViolationError(
            "customer.unknown_strategy",
            f"the policy in force ({ctx.policy.version}) has no strategy '{value}' (it has: {known})",
            field="strategy_override",
        )
    if field == "preferred_contact_hours":
        return _clean_hours(ctx, value)
    return value


def _clean_hours(ctx: Context, hours: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """[{start, end}] as "HH:MM" text, each end after its start; some must fall in the policy's windows."""
    if len(hours) > MAX_CONTACT_HOURS:
        raise RuleViolationError(
            "customer.contact_hours", f"at most {MAX_CONTACT_HOURS} ranges", field="preferred_contact_hours"
        )
    out = []
    for i, window in enumerate(hours):
        try:
            start, end = (time.fromisoformat(str(window[k])) for k in ("start", "end"))
        except (KeyError, TypeError, ValueError):
            raise RuleViolationError(
                "customer.contact_hours", "each range needs start and end as HH:MM", field=f"preferred_contact_hours[{i}]"
            ) from None
        if end <= start:
            raise RuleViolationError(
                "customer.contact_hours", f"end {end:%H:%M} must be after start {start:%H:%M}", field=f"preferred_contact_hours[{i}]"
            )
        out.append({"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"})
    if not out:
        return None
    hours_key = hours_of(out)
    assert hours_key is not None
    if not overlaps_windows(ctx.policy, hours_key):
        raise RuleViolationError(
            "customer.contact_hours",
            "the preferred hours fall outside every contact window of the policy in force",
            field="preferred_contact_hours",
        )
    return out


def _clean_contacts(contacts: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in contacts.items() if v is not None and k in CONTACT_FIELDS}


def _clean_persons(persons: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for i, person in enumerate(persons):
        if not str(person.get("name") or "").strip():
            raise RuleViolationError("field.required", "a contact person needs a name", field=f"contact_persons[{i}].name")
        out.append({k: v for k, v in person.items() if v is not None and k in CONTACT_PERSON_FIELDS})
    return out


def _credit_limit(amount: object | None, currency: str | None) -> tuple[Decimal | None, str | None]:
    if amount is None and currency is None:
        return None, None
    if amount is None or currency is None:
        raise RuleViolationError(
            "credit_limit.incomplete", "a credit limit needs an amount and a currency", field="credit_limit"
        )
    check_currency(currency, field="credit_limit.currency")
    return to_money(amount, currency, field="credit_limit.amount", allow_zero=True), currency


class Customer(TrailedAggregate):
    """A customer: who they are, how and when to reach them, how far to trust them."""

    class Registered(TrailedAggregate.Created):
        customer_id: str
        name: str
        timezone: str
        tier: str
        preferred_channel: str
        contacts: dict[str, Any]
        language: str | None = None
        contact_persons: list[dict[str, Any]] | None = None
        credit_limit: Decimal | None = None
        credit_currency: str | None = None
        credit_rating: str | None = None
        ability_to_pay: str | None = None
        willingness_to_pay: str | None = None
        # Added with strategies (ADR 0050).
        segment: str | None = None
        strategy_override: str | None = None
        preferred_contact_hours: list[dict[str, str]] | None = None

        def evolve(self, c: Customer) -> None:
            c.customer_id = self.customer_id
            c.name = self.name
            c.timezone = self.timezone
            c.tier = self.tier
            c.preferred_channel = self.preferred_channel
            c.contacts = dict(self.contacts)
            c.language = self.language or "zh-CN"
            c.contact_persons = [dict(p) for p in self.contact_persons or []]
            c.credit_limit = self.credit_limit
            c.credit_currency = self.credit_currency
            c.credit_rating = self.credit_rating
            c.segment = self.segment
            c.strategy_override = self.strategy_override
            c.preferred_contact_hours = self.preferred_contact_hours
            c.notes = []
            for topic in NOTE_TOPICS:
                text = getattr(self, topic)
                if text:
                    c.notes.append({"topic": topic, "text": text, "by": self.actor_id, "at": self.timestamp})

    class Updated(TrailedAggregate.Event):
        """Profile fields changed (never contacts: those are `ContactsChanged`)."""

        changes: dict[str, Any]

        def evolve(self, c: Customer) -> None:
            for field, value in self.changes.items():
                setattr(c, field, value)

    class ContactsChanged(TrailedAggregate.Event):
        contacts: dict[str, Any]
        contact_persons: list[dict[str, Any]]

        def evolve(self, c: Customer) -> None:
            c.contacts = dict(self.contacts)
            c.contact_persons = [dict(p) for p in self.contact_persons]

    class CreditLimitSet(TrailedAggregate.Event):
        credit_limit: Decimal | None
        credit_currency: str | None

        def evolve(self, c: Customer) -> None:
            c.credit_limit = self.credit_limit
            c.credit_currency = self.credit_currency

    class NoteAdded(TrailedAggregate.Event):
        """A note from sales on the customer's ability or willingness to pay."""

        topic: str
        text: str

        def evolve(self, c: Customer) -> None:
            c.notes = [*c.notes, {"topic": self.topic, "text": self.text, "by": self.actor_id, "at": self.timestamp}]

    class HoldPlaced(TrailedAggregate.Event):
        """A supervisor put collection with the customer on hold (copied onto each open receivable)."""

        reason: str
        until: datetime | None

        def evolve(self, c: Customer) -> None:
            c.hold = {"scope": "customer", "reason": self.reason, "until": self.until,
                      "placed_by": self.actor_id, "placed_at": self.timestamp}

    class HoldReleased(TrailedAggregate.Event):
        reason: str

        def evolve(self, c: Customer) -> None:
            c.hold = None

    # Added with holds (ADR 0052): customers registered before have none.
    hold = None

    class RevisitRecorded(TrailedAggregate.Event):
        """A revisit after collection took place (a fact: learning the customer's needs and feedback)."""

        occurred_at: datetime
        channel: str
        feedback: str
        satisfaction: int
        needs: str | None = None

        def evolve(self, c: Customer) -> None:
            revisit = {"at": self.occurred_at, "by": self.actor_id, "channel": self.channel,
                       "satisfaction": self.satisfaction, "feedback": self.feedback, "needs": self.needs}
            c.revisits = [*c.revisits[-(REVISITS_KEPT - 1):], revisit]

    # Added by issue 17 (class-level default: customers and snapshots from before have none).
    revisits = ()  # the latest revisits: {"at", "by", "channel", "satisfaction", "feedback", "needs"}

    # Added with strategies: class-level defaults serve snapshots taken before.
    segment = None
    strategy_override = None
    preferred_contact_hours = None

    # ---- queries ----------------------------------------------------------

    def strategy_facts(self) -> CustomerFacts:
        """What strategies are matched on (domain/strategy.py)."""
        return CustomerFacts(
            tier=self.tier,
            segment=self.segment,
            strategy=self.strategy_override,
            contact_hours=hours_of(self.preferred_contact_hours),
        )

    def latest_note(self, topic: str) -> str | None:
        for note in reversed(self.notes):
            if note["topic"] == topic:
                return note["text"]
        return None

    def hold_in_force(self, at: datetime) -> holds.Hold | None:
        """The customer's hold, if one is in force at `at`."""
        found = holds.in_force([self.hold] if self.hold else [], at)
        return found[0] if found else None

    # ---- commands ---------------------------------------------------------

    @classmethod
    def register(
        cls,
        ctx: Context,
        *,
        customer_id: str,
        name: str,
        timezone: str,
        tier: str,
        preferred_channel: str,
        contacts: dict[str, Any],
        language: str = "zh-CN",
        contact_persons: list[dict[str, Any]] | None = None,
        credit_limit: dict[str, Any] | None = None,
        credit_rating: str | None = None,
        ability_to_pay: str | None = None,
        willingness_to_pay: str | None = None,
        segment: str | None = None,
        strategy_override: str | None = None,
        preferred_contact_hours: list[dict[str, Any]] | None = None,
    ) -> Customer:
        for field, value in (
            ("name", name),
            ("timezone", timezone),
            ("preferred_channel", preferred_channel),
            ("language", language),
            ("credit_rating", credit_rating),
        ):
            _check_profile(field, value)
        limit, currency = _credit_limit(*((credit_limit or {}).get(k) for k in ("amount", "currency")))
        segment = _check_strategy_fields(ctx, "segment", segment)
        strategy_override = _check_strategy_fields(ctx, "strategy_override", strategy_override)
        preferred_contact_hours = _check_strategy_fields(ctx, "preferred_contact_hours", preferred_contact_hours)
        return cls._start(
            cls.Registered,
            ctx,
            id=customer_uuid(customer_id),
            customer_id=customer_id,
            name=name,
            timezone=timezone,
            tier=tier,
            preferred_channel=preferred_channel,
            contacts=_clean_contacts(contacts),
            language=language,
            contact_persons=_clean_persons(contact_persons or []) or None,
            credit_limit=limit,
            credit_currency=currency,
            credit_rating=credit_rating,
            ability_to_pay=ability_to_pay,
            willingness_to_pay=willingness_to_pay,
            segment=segment,
            strategy_override=strategy_override,
            preferred_contact_hours=preferred_contact_hours,
        )

    def record_revisit(
        self,
        ctx: Context,
        *,
        channel: str,
        feedback: str,
        satisfaction: int,
        needs: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Record a revisit that took place (at `occurred_at`, default now): a fact, never refused
        for when it happened, only for what cannot be true (the future, a score off the scale)."""
        if channel not in CHANNELS:
            raise RuleViolationError("field.choice", f"'{channel}' is not one of {', '.join(CHANNELS)}", field="channel")
        if not str(feedback).strip():
            raise RuleViolationError("field.required", "'feedback' must not be empty", field="feedback")
        if satisfaction not in aftercare.SATISFACTION_SCORES:
            raise RuleViolationError("revisit.satisfaction", "satisfaction is a score from 1 to 5", field="satisfaction")
        at = ctx.now if occurred_at is None else occurred_at
        if at.tzinfo is None or at.utcoffset() is None:
            raise RuleViolationError("field.timezone", "'occurred_at' needs a time zone", field="occurred_at")
        if at > ctx.now:
            raise RuleViolationError("revisit.occurred_in_future", f"occurred_at {at.isoformat()} is in the future", field="occurred_at")
        if at < EARLIEST_INSTANT:
            raise RuleViolationError("field.date_range", "occurred_at is before 1970-01-01", field="occurred_at")
        self._record(
            self.RevisitRecorded,
            ctx,
            occurred_at=at,
            channel=channel,
            feedback=feedback,
            satisfaction=satisfaction,
            needs=needs if needs and needs.strip() else None,
        )

    def update(self, ctx: Context, **patch: Any) -> None:
        """Apply a partial update: one event per kind of change, none when nothing changes.

        `patch` holds only the fields the caller sent: profile fields, `contacts`
        (replaces the set; a null member removes it), `contact_persons` (replaces
        the list), `credit_limit` ({amount, currency} or None to remove), and the
        notes `ability_to_pay` / `willingness_to_pay` (each adds a note).
        """
        changes: dict[str, Any] = {}
        for field in PROFILE_FIELDS + STRATEGY_FIELDS[1:]:
            if field in patch:
                value = patch[field]
                if value is None and field not in REMOVABLE_FIELDS:
                    raise RuleViolationError("field.required", f"'{field}' cannot be removed", field=field)
                _check_profile(field, value)
                value = _check_strategy_fields(ctx, field, value)
                if getattr(self, field) != value:
                    changes[field] = value
        contacts_given = "contacts" in patch or "contact_persons" in patch
        contacts = self.contacts
        persons = self.contact_persons
        if "contacts" in patch:
            contacts = _clean_contacts(patch["contacts"] or {})
        if "contact_persons" in patch:
            persons = _clean_persons(patch["contact_persons"] or [])
        limit_change = None
        if "credit_limit" in patch:
            given = patch["credit_limit"] or {}
            limit_change = _credit_limit(given.get("amount"), given.get("currency"))
            if limit_change == (self.credit_limit, self.credit_currency):
                limit_change = None
        notes = [(topic, patch[topic]) for topic in NOTE_TOPICS if patch.get(topic)]
        for topic, text in notes:
            if not str(text).strip():
                raise RuleViolationError("field.required", f"'{topic}' must not be empty", field=topic)

        if changes:
            self._record(self.Updated, ctx, changes=changes)
        if contacts_given and (contacts != self.contacts or persons != self.contact_persons):
            self._record(self.ContactsChanged, ctx, contacts=contacts, contact_persons=persons)
        if limit_change is not None:
            self._record(self.CreditLimitSet, ctx, credit_limit=limit_change[0], credit_currency=limit_change[1])
        for topic, text in notes:
            if self.latest_note(topic) != text:
                self._record(self.NoteAdded, ctx, topic=topic, text=text)

    def place_hold(self, ctx: Context, *, reason: str, until: datetime | None = None) -> None:
        """Put collection with the customer on hold (a supervisor); a hold replaces the one in force."""
        if not str(reason or "").strip():
            raise RuleViolationError("field.required", "'reason' must not be empty", field="reason")
        until = holds.check_until(until, ctx.now)
        self._record(self.HoldPlaced, ctx, reason=reason, until=until)

    def release_hold(self, ctx: Context, *, reason: str) -> None:
        if not str(reason or "").strip():
            raise RuleViolationError("field.required", "'reason' must not be empty", field="reason")
        if self.hold_in_force(ctx.now) is None:
            raise RuleViolationError("hold.not_in_force", f"customer '{self.customer_id}' is not on hold")
        self._record(self.HoldReleased, ctx, reason=reason)
