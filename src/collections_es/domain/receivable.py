"""The Receivable aggregate: one issued invoice driven through the collection lifecycle.

Each public command method decides (the lifecycle gives the next state, the
invariants are checked here) and records one event (a payment that keeps a
promise records two: `PaymentRecorded`, then `PromiseKept`); each event's
`evolve` only assigns. Money is Decimal in the receivable's currency.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from . import aftercare, charges, compliance, holds, lifecycle, limitation
from .aggregate import TrailedAggregate
from .errors import RuleViolationError
from .calendar import business_day_on_or_before, check_timezone, start_of_day
from .money import check_currency, minor_units, to_money
from .policy import CHANNELS, ChargesPolicy, CollectionPolicy
from .strategy import hours_of
from .trail import CUSTOMER_ROLE, Context

CONTACTS_KEPT = 100
EXCEPTIONS_KEPT = 20
RECEIVABLE_NAMESPACE = uuid.UUID("5b0c2f7e-4f4e-4c8e-9d43-3c1f7c0a9b11")

PAYMENT_METHODS: tuple[str, ...] = ("bank_transfer", "alipay", "wechat_pay", "cash", "check", "card", "other")
PaymentMethod = Literal["bank_transfer", "alipay", "wechat_pay", "cash", "check", "card", "other"]
CONTACT_OUTCOMES: tuple[str, ...] = (
    "reached",
    "acknowledged",
    "promised",
    "refused",
    "disputed",
    "no_answer",
    "left_message",
    "wrong_contact",
    "other",
)
ContactOutcome = Literal[
    "reached", "acknowledged", "promised", "refused", "disputed", "no_answer", "left_message", "wrong_contact", "other"
]


def is_legal_referral_suggested(state: str, days_past_due: int, policy: CollectionPolicy) -> bool:
    """Suggested, never done automatically: open, not yet with legal, long past due."""
    return state in lifecycle.PRE_LEGAL_STATES and days_past_due >= policy.legal_referral_suggested_after_days


def receivable_id(invoice_number: str) -> uuid.UUID:
    """The receivable's id is derived from its invoice number, so issuing twice collides."""
    return uuid.uuid5(RECEIVABLE_NAMESPACE, invoice_number)


def _require_text(value: str | None, field: str) -> str:
    if value is None or not str(value).strip():
        raise RuleViolationError("field.required", f"'{field}' must not be empty", field=field)
    return str(value)


EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2199, 12, 31)
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)


def _check_date(value: date, field: str) -> date:
    """Dates far outside any real invoice's life are refused (they would overflow calendars)."""
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise RuleViolationError(
            "field.date_range", f"{value.isoformat()} is outside {EARLIEST_DATE} to {LATEST_DATE}", field=field
        )
    return value


def _require_instant(value: datetime, field: str) -> datetime:
    """An instant with its time zone (a naive time could be anyone's)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise RuleViolationError("field.timezone", f"'{field}' needs a time zone, e.g. 2026-03-01T09:00:00Z", field=field)
    return value


def _require_choice(value: str, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise RuleViolationError(
            "field.choice", f"'{value}' is not one of {', '.join(choices)}", field=field
        )
    return value


def _ended_holds(r: Any, at: datetime) -> tuple[list[dict[str, Any]], datetime | None]:
    """The receivable's holds still running at `at`, and the latest moment one ended by itself
    (or `r.resumed_at`): what the hold events carry forward."""
    kept, resumed = [], r.resumed_at
    for held in r.holds:
        until = held.get("until")
        if until is not None and until <= at:
            resumed = until if resumed is None else max(resumed, until)
        else:
            kept.append(held)
    return kept, resumed


class Receivable(TrailedAggregate):
    """An issued invoice and everything done to collect it."""

    # ---- events -------------------------------------------------------------

    class Event(TrailedAggregate.Event):
        state_after: str

        def apply(self, aggregate: Any) -> None:
            aggregate.state = self.state_after
            super().apply(aggregate)
            # Every event is offered to the one computation of the limitation period
            # (domain/limitation.py), which the compliance rule folds the same way.
            name = type(self).__name__
            if name in limitation.FIELDS:
                found = limitation.interruption(
                    name, limitation.data_of(name, self), self.timestamp, aggregate.timezone
                )
                period = aggregate.limitation_period
                following = period.after(found, self.originator_version)
                if following is not period:
                    aggregate.limitation_state = following.as_dict()

    class Issued(Event, TrailedAggregate.Created):
        invoice_number: str
        customer_id: str
        timezone: str
        amount: Decimal
        currency: str
        issued_on: date
        due_on: date
        collector: str | None
        # Added with strategies (ADR 0050): the customer's preferred contact hours, which
        # narrow the policy's windows for this receivable (domain/strategy.py).
        contact_hours: list[dict[str, str]] | None = None

        def evolve(self, r: Receivable) -> None:
            r.contact_hours = self.contact_hours
            r.invoice_number = self.invoice_number
            r.customer_id = self.customer_id
            r.timezone = self.timezone
            r.amount = self.amount
            r.currency = self.currency
            r.issued_on = self.issued_on
            r.due_on = self.due_on
            r.collector = self.collector
            r.paid = Decimal(0) * self.amount
            r.adjustment = r.paid
            r.written_off_amount = r.paid
            r.recovered = r.paid
            r.payment_references = []
            r.promise = None
            r.installment_plan = None
            r.dispute = None
            r.write_off_request = None
            r.last_acknowledged_at = None
            r.limitation_state = limitation.Period.from_due_date(self.due_on).as_dict()
            r.limitation_warned_for = None
            r.delivered_messages = []
            r.proceedings = []
            r.contact_attempts = []
            r.legal_referral_approval = None

    class ReminderSent(Event):
        channel: str

        def evolve(self, r: Receivable) -> None:
            r.reminders_sent += 1
            r.last_reminder_at = self.timestamp

    class Replanned(Event):
        """The receivable follows the strategy and policy version this event records from now
        on (its customer's segment, tier, own strategy or hours changed, or the policy did)."""

        contact_hours: list[dict[str, str]] | None
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.contact_hours = self.contact_hours

    class InstallmentReminderSent(Event):
        """The customer was reminded of an installment coming due."""

        channel: str
        installment_due_on: date
        amount: Decimal

        def evolve(self, r: Receivable) -> None:
            plan = r.installment_plan
            if plan is not None:
                r.installment_plan = {**plan, "reminded": [*plan.get("reminded", ()), self.installment_due_on]}

    class FellDue(Event):
        pass

    class FollowUpStarted(Event):
        channel: str | None
        note: str | None

    class ContactRecorded(Event):
        channel: str
        outcome: str
        note: str
        customer_attitude: str | None
        next_step: str | None
        promised_on: date | None
        reason_for_non_payment: str | None = None
        # Added by issue 11 (defaults: events recorded before verify and decode unchanged).
        # When the contact took place (None: when it was recorded); the rules it broke
        # then, each {rule_id, detail, excepted}; the contact exception that covered some.
        occurred_at: datetime | None = None
        breaches_found: list[dict[str, Any]] | None = None
        exception: dict[str, str] | None = None
        # Added by issue 17: the reason's code in the policy's vocabulary (ADR 0058).
        reason_code: str | None = None

        @property
        def contact_at(self) -> datetime:
            return self.occurred_at or self.timestamp

        def evolve(self, r: Receivable) -> None:
            # The recent contacts, for the frequency caps (bounded: no cap exceeds 100).
            r.contact_attempts = [*r.contact_attempts[-(CONTACTS_KEPT - 1):], {"at": self.contact_at, "channel": self.channel}]
            r.last_contact_judgement = {"breaches": self.breaches_found, "exception": self.exception}
            if self.outcome == "acknowledged":
                r.last_acknowledged_at = self.contact_at

    class ContactExceptionGranted(Event):
        channel: str
        reason: str
        valid_until: datetime

        def evolve(self, r: Receivable) -> None:
            granted = {
                "channel": self.channel,
                "reason": self.reason,
                "granted_by": self.actor_id,
                "granted_at": self.timestamp,
                "valid_until": self.valid_until,
            }
            r.contact_exceptions = [*r.contact_exceptions[-(EXCEPTIONS_KEPT - 1):], granted]

    class PromiseMade(Event):
        amount: Decimal
        promised_on: date
        note: str | None

        def evolve(self, r: Receivable) -> None:
            r.promise = {"amount": self.amount, "promised_on": self.promised_on, "paid_before": r.paid}
            r.installment_plan = None
            r.legal_referral_approval = None

    class InstallmentPlanAgreed(Event):
        installments: list[dict[str, Any]]
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.installment_plan = {"installments": self.installments, "paid_before": r.paid}
            r.promise = None
            r.legal_referral_approval = None

    class InstallmentPlanProposed(Event):
        """The customer proposed a plan (portal): a collector accepts or declines it."""

        installments: list[dict[str, Any]]
        note: str | None

        def evolve(self, r: Receivable) -> None:
            r.installment_proposal = {
                "status": "pending",
                "installments": self.installments,
                "note": self.note,
                "proposed_by": self.actor_id,
                "proposed_at": self.timestamp,
            }

    class InstallmentProposalAccepted(Event):
        """A collector accepted the customer's proposal; the plan itself follows (`InstallmentPlanAgreed`)."""

        note: str | None

        def evolve(self, r: Receivable) -> None:
            r.installment_proposal = {**r.installment_proposal, "status": "accepted", "decided_by": self.actor_id,
                                      "decided_at": self.timestamp, "decision": self.note}

    class InstallmentProposalDeclined(Event):
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.installment_proposal = {**r.installment_proposal, "status": "declined", "decided_by": self.actor_id,
                                      "decided_at": self.timestamp, "decision": self.reason}

    class PromiseBroken(Event):
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.promise = None
            r.installment_plan = None

    class PromiseKept(Event):
        """Payments since the promise (or plan) cover it and leave a balance: back to collection."""

        amount: Decimal  # what was promised: the promise's amount or the plan's total
        paid_towards: Decimal  # paid since the promise was made

        def evolve(self, r: Receivable) -> None:
            r.promise = None
            r.installment_plan = None

    class Escalated(Event):
        reason: str

    class LegalReferralApproved(Event):
        note: str | None

        def evolve(self, r: Receivable) -> None:
            r.legal_referral_approval = {"approved_by": self.actor_id, "at": self.timestamp}

    class ReferredToLegal(Event):
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.legal_referral_approval = None

    class PaymentRecorded(Event):
        amount: Decimal
        method: str
        paid_on: date
        reference: str
        # Added with charges (ADR 0054): what the payment settled of each part, recorded once
        # the receivable has charges; None means all of it went to the principal.
        allocation: dict[str, Decimal] | None = None

        def evolve(self, r: Receivable) -> None:
            r.paid += self.amount
            r.payment_references = [*r.payment_references, self.reference]
            if self.allocation is not None:
                r.charges_state = r.charges | {
                    "fees_paid": r.charges["fees_paid"] + self.allocation["fees"],
                    "interest_paid": r.charges["interest_paid"] + self.allocation["interest"],
                }
            if lifecycle.is_settled(self.state_after):
                r.promise = None
                r.installment_plan = None

    class WriteOffRequested(Event):
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.write_off_request = {"requested_by": self.actor_id, "reason": self.reason}

    class WriteOffApproved(Event):
        note: str | None
        amount: Decimal

        def evolve(self, r: Receivable) -> None:
            r.written_off_amount = self.amount
            r.write_off_request = None
            r.promise = None
            r.installment_plan = None

    class DisputeRaised(Event):
        reason: str
        # Added by issue 17: the reason for non-payment the dispute gives, and its code (ADR 0058).
        reason_for_non_payment: str | None = None
        reason_code: str | None = None

        def evolve(self, r: Receivable) -> None:
            r.dispute = {"reason": self.reason, "raised_by": self.actor_id, "raised_at": self.timestamp}

    class DisputeResolved(Event):
        resolution: str
        adjusted_amount: Decimal | None
        # Added with charges (ADR 0054): everything owed after the adjustment, recorded when the
        # receivable has charges (read models tracking the whole balance cannot tell it otherwise).
        balance_after: Decimal | None = None

        def evolve(self, r: Receivable) -> None:
            r.dispute = None
            if self.adjusted_amount is not None:
                r.adjustment = r.amount - self.adjusted_amount

    class CollectorAssigned(Event):
        collector: str

        def evolve(self, r: Receivable) -> None:
            r.collector = self.collector

    class LimitationWarned(Event):
        lapses_on: date

        def evolve(self, r: Receivable) -> None:
            r.limitation_warned_for = self.lapses_on

    class DeliveryRecorded(Event):
        """A message or letter reached the customer: its server or gateway accepted it."""

        message_id: str
        channel: str
        template: str
        delivered_at: datetime

        def evolve(self, r: Receivable) -> None:
            r.delivered_messages = [*r.delivered_messages, self.message_id]

    class ProceedingsRecorded(Event):
        """Suit or arbitration filed against the customer."""

        kind: str
        filed_on: date
        case_number: str

        def evolve(self, r: Receivable) -> None:
            r.proceedings = [*r.proceedings, {"kind": self.kind, "filed_on": self.filed_on, "case_number": self.case_number}]

    class ComplaintRecorded(Event):
        """A complaint about the collection (customer service or a supervisor records it)."""

        channel: str
        text: str
        severity: str
        about_version: int | None  # the receivable's event it concerns (a contact, say), if any

        def evolve(self, r: Receivable) -> None:
            r.open_complaints = [*r.open_complaints, {
                "complaint": self.originator_version, "severity": self.severity, "channel": self.channel,
                "about_version": self.about_version, "recorded_by": self.actor_id, "recorded_at": self.timestamp,
            }]

    class ComplaintResolved(Event):
        """A supervisor's ruling on a complaint: upheld or not, and the action taken."""

        complaint: int  # the version of the event that recorded it
        outcome: str
        action: str

        def evolve(self, r: Receivable) -> None:
            r.open_complaints = [c for c in r.open_complaints if c["complaint"] != self.complaint]

    class ChargesAccrued(Event):
        """Interest on the overdue principal from `since` through `through` (and the late fee
        when its day is among them), at the policy's rate then (ADR 0053)."""

        since: date
        through: date
        days: int
        rate: Decimal
        principal: Decimal  # the principal outstanding over the period
        basis: Decimal  # principal × rate × days, exact
        interest: Decimal  # the interest this accrual adds (rounded as ADR 0053 says)
        fee: Decimal  # the late fee it charges (zero but once)

        def evolve(self, r: Receivable) -> None:
            c = r.charges
            r.charges_state = c | {
                "through": self.through,
                "basis": charges.add_basis(c["basis"], self.basis),
                "interest": c["interest"] + self.interest,
                "fees": c["fees"] + self.fee,
                "fee_charged": c["fee_charged"] or self.fee > 0,
            }

    class ChargesWaiverRequested(Event):
        """A waiver above the policy's threshold, waiting for a second supervisor."""

        amount: Decimal
        reason: str

        def evolve(self, r: Receivable) -> None:
            r.charges_state = r.charges | {
                "waiver": {"amount": self.amount, "reason": self.reason, "requested_by": self.actor_id}
            }

    class ChargesWaived(Event):
        amount: Decimal
        reason: str
        fees: Decimal  # what it took off the fees
        interest: Decimal  # ...and off the interest
        requested_by: str | None  # the first supervisor, when a second approved it
        note: str | None

        def evolve(self, r: Receivable) -> None:
            c = r.charges
            r.charges_state = c | {
                "fees_waived": c["fees_waived"] + self.fees,
                "interest_waived": c["interest_waived"] + self.interest,
                # An approval ends the request it approved; a waiver done at once leaves one pending.
                "waiver": None if self.requested_by is not None else c["waiver"],
            }
            if lifecycle.is_settled(self.state_after):
                r.promise = None
                r.installment_plan = None

    class RecoveryRecorded(Event):
        amount: Decimal
        method: str
        paid_on: date
        reference: str

        def evolve(self, r: Receivable) -> None:
            r.recovered += self.amount
            r.payment_references = [*r.payment_references, self.reference]

    class HoldPlaced(Event):
        """A supervisor put collection on hold: on this receivable, or on its customer (scope)."""

        scope: str
        reason: str
        until: datetime | None
        # A customer's hold copied here: who placed it on the customer (the event's actor is
        # whoever's command copied it, e.g. the service issuing a receivable while it is held).
        placed_by: str | None = None

        def evolve(self, r: Receivable) -> None:
            # A hold replaces the one of its scope; holds that had ended by now are dropped,
            # their end kept as the moment collection last resumed (holds.deferral).
            kept, resumed = _ended_holds(r, self.timestamp)
            placed = {"scope": self.scope, "reason": self.reason, "until": self.until,
                      "placed_by": self.placed_by or self.actor_id, "placed_at": self.timestamp}
            r.holds = [*(h for h in kept if h["scope"] != self.scope), placed]
            r.resumed_at = resumed

    class HoldReleased(Event):
        """A supervisor released the holds of `scopes`: collection resumes from now."""

        scopes: list[str]
        reason: str

        def evolve(self, r: Receivable) -> None:
            kept, _ = _ended_holds(r, self.timestamp)
            r.holds = [h for h in kept if h["scope"] not in self.scopes]
            r.resumed_at = self.timestamp

    # Attributes are assigned by events only (see `Issued.evolve`). They are not
    # annotated here: annotations on an aggregate class become dataclass fields.
    # These two were added later: class-level defaults serve snapshots taken before.
    contact_attempts = ()  # each contact: {"at" (when it occurred), "channel"}
    legal_referral_approval = None  # {"approved_by", "at"}
    contact_exceptions = ()  # each: {"channel", "reason", "granted_by", "granted_at", "valid_until"}
    last_contact_judgement = None  # the last contact's {"breaches", "exception"}, as its event recorded them
    # Added with the limitation interruptions (ADR 0036); `limitation_state` is None in older
    # snapshots, which kept `limitation_from` instead (see `limitation_period`).
    limitation_state = None  # limitation.Period.as_dict()
    delivered_messages = ()  # message ids whose delivery is recorded
    proceedings = ()  # each: {"kind", "filed_on", "case_number"}
    # Added with holds (ADR 0052): each {"scope", "reason", "until", "placed_by", "placed_at"};
    # when the last hold ended (released, or its `until` passed), for the timers (domain/holds.py).
    holds = ()
    resumed_at = None
    open_complaints = ()  # each: {"complaint" (its event's version), "severity", "channel", "about_version", ...}
    # Added with strategies (ADR 0050).
    contact_hours = None  # the customer's preferred contact hours, [{start, end}] as "HH:MM"
    reminders_sent = 0  # pre-due reminders sent (see `reminders_count` for older snapshots)
    last_reminder_at = None
    # Added with charges (ADR 0053): None until the first charge is accrued (see `charges`).
    charges_state = None
    # The customer's last installment proposal (portal): {"status": pending|accepted|declined,
    # "installments", "note", "proposed_by", "proposed_at", "decided_by"?, "decided_at"?, "decision"?}.
    installment_proposal = None

    # ---- queries ------------------------------------------------------------

    @property
    def charges(self) -> dict[str, Any]:
        """Interest and fees: accrued through a day, paid, waived; a waiver waiting for approval."""
        if self.charges_state is not None:
            return self.charges_state
        zero = self.amount * 0
        return {
            "through": None,
            "basis": Decimal(0),
            "interest": zero,
            "fees": zero,
            "interest_paid": zero,
            "fees_paid": zero,
            "interest_waived": zero,
            "fees_waived": zero,
            "fee_charged": False,
            "waiver": None,
        }

    @property
    def principal_balance(self) -> Decimal:
        c = self.charges
        principal_paid = self.paid - c["interest_paid"] - c["fees_paid"]
        return self.amount - self.adjustment - principal_paid

    @property
    def balance_breakdown(self) -> dict[str, Decimal]:
        """What is owed, by part: principal, interest, fees."""
        c = self.charges
        return {
            "principal": self.principal_balance,
            "interest": c["interest"] - c["interest_paid"] - c["interest_waived"],
            "fees": c["fees"] - c["fees_paid"] - c["fees_waived"],
        }

    @property
    def charges_balance(self) -> Decimal:
        parts = self.balance_breakdown
        return parts["interest"] + parts["fees"]

    @property
    def balance(self) -> Decimal:
        """Everything owed: the principal and the charges outstanding (ADR 0054)."""
        return self.amount - self.adjustment - self.paid + self.charges["interest"] + self.charges["fees"] - (
            self.charges["interest_waived"] + self.charges["fees_waived"]
        )

    @property
    def reminders_count(self) -> int:
        """Pre-due reminders sent (a snapshot from before they were counted shows one when reminded)."""
        if self.reminders_sent == 0 and self.state == "reminded":
            return 1
        return self.reminders_sent

    def next_installment(self) -> dict[str, Any] | None:
        """The plan's first installment that payments since the plan do not cover yet."""
        plan = self.installment_plan
        if plan is None:
            return None
        paid, owed = self.paid_towards_promise(), Decimal(0)
        for item in plan["installments"]:
            owed += item["amount"]
            if paid < owed:
                return item
        return None

    def installment_to_remind(self) -> dict[str, Any] | None:
        """The next installment not yet covered by payments, unless its reminder is sent."""
        item = self.next_installment()
        if item is None or item["due_on"] in (self.installment_plan or {}).get("reminded", ()):
            return None
        return item

    def is_below_dunning_minimum(self, policy: CollectionPolicy) -> bool:
        return policy.is_below_dunning_minimum(self.balance, self.currency)

    @property
    def is_disputed(self) -> bool:
        return self.dispute is not None

    def holds_in_force(self, at: datetime) -> list[holds.Hold]:
        """The holds in force at `at` (its own, its customer's)."""
        return holds.in_force(self.holds, at)

    def is_held(self, at: datetime) -> bool:
        return holds.is_held(self.holds, at)

    @property
    def allowed_commands(self) -> list[str]:
        return lifecycle.allowed_commands(self.state)

    def local_date(self, now: datetime) -> date:
        """The calendar date at `now` in the customer's time zone."""
        return now.astimezone(ZoneInfo(self.timezone)).date()

    def days_past_due(self, now: datetime) -> int:
        return max(0, (self.local_date(now) - self.due_on).days)

    def is_legal_referral_suggested(self, now: datetime, policy: CollectionPolicy) -> bool:
        return is_legal_referral_suggested(self.state, self.days_past_due(now), policy)

    @property
    def limitation_period(self) -> limitation.Period:
        """The limitation period running now (domain/limitation.py)."""
        if self.limitation_state is not None:
            return limitation.Period.from_dict(self.limitation_state)
        # A snapshot taken before ADR 0036 kept the day the period ran from: the due
        # date, or the day of the last payment, promise, plan or acknowledged contact.
        start: date = self.limitation_from
        return limitation.Period(limitation.start_after_due(start) if start == self.due_on else start)

    def limitation_lapses_on(self, policy: CollectionPolicy) -> date:
        """The last day of the limitation period (by policy, three years; art. 188)."""
        return self.limitation_period.lapses_on(policy.limitation_period_years)

    def limitation_warning_on(self, policy: CollectionPolicy) -> date:
        return self.limitation_lapses_on(policy) - timedelta(days=policy.limitation_warning_days)

    def is_commitment_broken(self, today: date, grace_days: int) -> bool:
        """A promise or an installment is past its date plus grace without being covered."""
        paid = self.paid_towards_promise()
        if self.promise is not None:
            late = today > self.promise["promised_on"] + timedelta(days=grace_days)
            return late and paid < self.promise["amount"]
        if self.installment_plan is not None:
            owed = Decimal(0)
            for item in self.installment_plan["installments"]:
                if today <= item["due_on"] + timedelta(days=grace_days):
                    break
                owed += item["amount"]
            return paid < owed
        return False

    def next_commitment_check(self, grace_days: int) -> date | None:
        """The first day on which the current promise or next unpaid installment is broken if still unpaid."""
        paid = self.paid_towards_promise()
        if self.promise is not None:
            if paid >= self.promise["amount"]:
                return None
            return self.promise["promised_on"] + timedelta(days=grace_days + 1)
        if self.installment_plan is not None:
            owed = Decimal(0)
            for item in self.installment_plan["installments"]:
                owed += item["amount"]
                if paid < owed:
                    return item["due_on"] + timedelta(days=grace_days + 1)
        return None

    def paid_towards_promise(self) -> Decimal:
        commitment = self.promise or self.installment_plan
        if commitment is None:
            return Decimal(0)
        return self.paid - commitment["paid_before"]

    def promised_amount(self) -> Decimal | None:
        """What the promise in force promised: its amount, or the plan's total; None without one."""
        if self.promise is not None:
            return self.promise["amount"]
        if self.installment_plan is not None:
            return sum((i["amount"] for i in self.installment_plan["installments"]), Decimal(0))
        return None

    def is_promise_covered(self, extra: Decimal = Decimal(0)) -> bool:
        """Whether payments since the promise (and `extra`) cover all it promised: the
        promise's amount, or every installment of the plan."""
        promised = self.promised_amount()
        return promised is not None and self.paid_towards_promise() + extra >= promised

    # ---- commands -----------------------------------------------------------

    @classmethod
    def issue(
        cls,
        ctx: Context,
        *,
        invoice_number: str,
        customer_id: str,
        timezone: str,
        amount: object,
        currency: str,
        issued_on: date,
        due_on: date,
        collector: str | None = None,
        contact_hours: list[dict[str, str]] | None = None,
    ) -> Receivable:
        _require_text(invoice_number, "invoice_number")
        _require_text(customer_id, "customer_id")
        check_timezone(timezone)
        check_currency(currency)
        money = to_money(amount, currency)
        _check_date(issued_on, "issued_on")
        _check_date(due_on, "due_on")
        if due_on < issued_on:
            raise RuleViolationError("receivable.due_before_issue", "due_on must not be before issued_on", field="due_on")
        return cls._start(
            cls.Issued,
            ctx,
            id=receivable_id(invoice_number),
            state_after=lifecycle.INITIAL_STATE,
            invoice_number=invoice_number,
            customer_id=customer_id,
            timezone=timezone,
            amount=money,
            currency=currency,
            issued_on=issued_on,
            due_on=due_on,
            collector=collector,
            contact_hours=contact_hours or None,
        )

    def _next(self, command: str, *, settles: bool = False) -> str:
        return lifecycle.next_state(self.state, command, settles=settles)

    def contacts(self) -> list[compliance.ContactAttempt]:
        return [compliance.ContactAttempt(str(self.id), c["at"], c["channel"]) for c in self.contact_attempts]

    def exceptions(self) -> list[compliance.ContactException]:
        return [compliance.ContactException(**e) for e in self.contact_exceptions]

    def judge_contact(
        self, policy: CollectionPolicy, *, channel: str, at: datetime, others: Sequence[compliance.ContactAttempt]
    ) -> compliance.ContactJudgement:
        """What a contact by `channel` at `at` breaks, given the customer's other contacts."""
        return compliance.judge_contact(**self._contact_facts(policy, channel, at, others))

    def contact_check(
        self, policy: CollectionPolicy, *, channel: str, at: datetime, others: Sequence[compliance.ContactAttempt]
    ) -> compliance.ContactCheck:
        """The gate before a contact: what one by `channel` at `at` would break, and the first
        instant from then that breaks nothing. A state that takes no contact is refused (409)."""
        lifecycle.next_state(self.state, "record_contact")
        _require_choice(channel, CHANNELS, "channel")
        _require_instant(at, "at")
        return compliance.check_contact(**self._contact_facts(policy, channel, at, others))

    def _contact_facts(
        self, policy: CollectionPolicy, channel: str, at: datetime, others: Sequence[compliance.ContactAttempt]
    ) -> dict[str, Any]:
        """What the contact rules judge a contact by `channel` at `at` on this receivable with."""
        return {
            "receivable_id": str(self.id),
            "at": at,
            "timezone": self.timezone,
            "channel": channel,
            "state": self.state,
            "policy": policy,
            "own": self.contacts(),
            "others": others,
            "exceptions": self.exceptions(),
        }

    def last_contact_findings(self) -> list[compliance.RecordedFinding]:
        """The findings the last recorded contact gave at once (what it broke, or what an exception passed)."""
        judgement = self.last_contact_judgement or {}
        return compliance.recorded_findings(judgement.get("breaches"), judgement.get("exception"))

    def send_reminder(self, ctx: Context, *, channel: str) -> None:
        state = self._next("send_reminder")
        self._refuse_while_held(ctx, "send_reminder")
        _require_choice(channel, CHANNELS, "channel")
        # A week before due, or the nearest earlier business day when that is not one.
        earliest = business_day_on_or_before(self.due_on - timedelta(days=ctx.policy.reminder_lead_days), ctx.policy)
        if self.local_date(ctx.now) < earliest:
            raise RuleViolationError(
                "reminder.too_early", f"a reminder may be sent from {earliest.isoformat()} (due {self.due_on})"
            )
        if ctx.scheduled_for is not None:  # the scheduler's: the strategy's cadence bounds it
            self._check_automatic_reminder(ctx)
        breaches = compliance.channel_breach(channel, self.state, ctx.policy)
        self._record(self.ReminderSent, ctx, breaches=breaches, state_after=state, channel=channel)

    def _check_automatic_reminder(self, ctx: Context) -> None:
        self._check_dunning_minimum(ctx)
        if self.reminders_count >= ctx.policy.max_automatic_reminders:
            raise RuleViolationError(
                "reminder.max_reached", f"{self.reminders_count} reminder(s) sent; the policy sends at most {ctx.policy.max_automatic_reminders}"
            )
        if self.last_reminder_at is not None:
            next_on = self.local_date(self.last_reminder_at) + timedelta(days=ctx.policy.reminder_interval_days)
            if self.local_date(ctx.now) < next_on:
                raise RuleViolationError("reminder.too_soon", f"the next reminder may be sent from {next_on.isoformat()}")

    def _check_dunning_minimum(self, ctx: Context) -> None:
        """Automatic dunning stops below the policy's minimum balance for the currency."""
        if ctx.scheduled_for is not None and self.is_below_dunning_minimum(ctx.policy):
            minimum = ctx.policy.automatic_dunning_min_amount[self.currency]
            raise RuleViolationError(
                "dunning.below_minimum", f"the balance {self.balance} {self.currency} is below {minimum}: no automatic dunning"
            )

    def remind_installment(self, ctx: Context, *, channel: str) -> None:
        """Remind the customer of the next installment of the plan (policy: installment_reminder_lead_days before it)."""
        state = self._next("remind_installment")
        self._refuse_while_held(ctx, "remind_installment")
        _require_choice(channel, CHANNELS, "channel")
        item = self.installment_to_remind()
        if item is None:
            raise RuleViolationError("installment_reminder.none", "no installment of a plan awaits a reminder")
        lead = ctx.policy.installment_reminder_lead_days
        if ctx.scheduled_for is not None:
            self._check_dunning_minimum(ctx)
            if lead is None:
                raise RuleViolationError("installment_reminder.off", "the policy sends no installment reminders")
        if lead is not None:
            earliest = business_day_on_or_before(item["due_on"] - timedelta(days=lead), ctx.policy)
            if self.local_date(ctx.now) < earliest:
                raise RuleViolationError(
                    "installment_reminder.too_early",
                    f"the reminder of the installment due {item['due_on']} may be sent from {earliest.isoformat()}",
                )
        breaches = compliance.channel_breach(channel, self.state, ctx.policy)
        self._record(
            self.InstallmentReminderSent,
            ctx,
            breaches=breaches,
            state_after=state,
            channel=channel,
            installment_due_on=item["due_on"],
            amount=item["amount"],
        )

    def replan(self, ctx: Context, *, reason: str, contact_hours: list[dict[str, str]] | None = None) -> None:
        """Follow the strategy and policy of `ctx` from now on: the timers are planned anew from
        this event (what is owed and past is owed at once; what fired does not fire again)."""
        state = self._next("replan")
        _require_text(reason, "reason")
        contact_hours = contact_hours or None
        if (ctx.policy.version, ctx.strategy, hours_of(contact_hours)) == (
            self.policy_version,
            self.strategy,
            hours_of(self.contact_hours),
        ):
            raise RuleViolationError(
                "replan.unchanged", f"the receivable follows policy {ctx.policy.version}, strategy {ctx.strategy or '(none)'} already"
            )
        self._record(self.Replanned, ctx, state_after=state, contact_hours=contact_hours, reason=reason)

    def fall_due(self, ctx: Context) -> None:
        state = self._next("fall_due")
        if self.local_date(ctx.now) < self.due_on:
            raise RuleViolationError("fall_due.not_yet", f"the receivable is due on {self.due_on.isoformat()}")
        self._record(self.FellDue, ctx, state_after=state)

    def start_follow_up(self, ctx: Context, *, channel: str | None = None, note: str | None = None) -> None:
        state = self._next("start_follow_up")
        self._refuse_while_held(ctx, "start_follow_up")
        self._check_dunning_minimum(ctx)
        if channel is not None:
            _require_choice(channel, CHANNELS, "channel")
        breaches = compliance.channel_breach(channel, self.state, ctx.policy)
        self._record(self.FollowUpStarted, ctx, breaches=breaches, state_after=state, channel=channel, note=note)

    def record_contact(
        self,
        ctx: Context,
        *,
        channel: str,
        outcome: str,
        note: str,
        customer_attitude: str | None = None,
        next_step: str | None = None,
        promised_on: date | None = None,
        reason_for_non_payment: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Record a contact that took place (at `occurred_at`, default now). It is a fact: never
        refused for the rules it broke, which its event records, each a finding at once."""
        state = self._next("record_contact")
        _require_choice(channel, CHANNELS, "channel")
        _require_choice(outcome, CONTACT_OUTCOMES, "outcome")
        _require_text(note, "note")
        if promised_on is not None:
            _check_date(promised_on, "promised_on")
        at = ctx.now if occurred_at is None else self._check_occurred_at(ctx, occurred_at)
        if ctx.override_rule_id is not None:
            raise RuleViolationError(
                "override.not_needed",
                "a contact that took place is recorded whatever it breaks, and each breach is reported; there is "
                "nothing to override. To let a contact outside the windows or over a cap pass, a supervisor grants "
                "an exception before it (grant-contact-exception)",
                field="override.rule_id",
            )
        judged = self.judge_contact(ctx.policy, channel=channel, at=at, others=ctx.customer_contacts)
        self._record(
            self.ContactRecorded,
            ctx,
            state_after=state,
            channel=channel,
            outcome=outcome,
            note=note,
            customer_attitude=customer_attitude,
            next_step=next_step,
            promised_on=promised_on,
            reason_for_non_payment=reason_for_non_payment,
            occurred_at=at,
            reason_code=aftercare.classify_reason(reason_for_non_payment, ctx.policy),
            breaches_found=judged.recorded(),
            exception=judged.exception.describe() if judged.exception else None,
        )

    def _check_occurred_at(self, ctx: Context, occurred_at: datetime) -> datetime:
        _require_instant(occurred_at, "occurred_at")
        if occurred_at > ctx.now:
            raise RuleViolationError(
                "contact.occurred_in_future", f"occurred_at {occurred_at.isoformat()} is in the future", field="occurred_at"
            )
        issued = start_of_day(self.issued_on, self.timezone)
        if occurred_at < issued:
            raise RuleViolationError(
                "contact.occurred_before_issue",
                f"occurred_at {occurred_at.isoformat()} is before the receivable was issued ({self.issued_on})",
                field="occurred_at",
            )
        return occurred_at

    def grant_contact_exception(self, ctx: Context, *, channel: str, reason: str, valid_until: datetime) -> None:
        """A supervisor lets contacts by `channel` pass the windows and caps until `valid_until`:
        they are still recorded with what they broke, reported as overrides rather than breaches."""
        state = self._next("grant_contact_exception")
        _require_choice(channel, CHANNELS, "channel")
        _require_text(reason, "reason")
        _require_instant(valid_until, "valid_until")
        latest = ctx.now + timedelta(days=compliance.CONTACT_EXCEPTION_MAX_DAYS)
        if not ctx.now < valid_until <= latest:
            raise RuleViolationError(
                "contact_exception.valid_until",
                f"valid_until must be after now and at most {compliance.CONTACT_EXCEPTION_MAX_DAYS} days ahead "
                f"(by {latest.isoformat()})",
                field="valid_until",
            )
        self._record(self.ContactExceptionGranted, ctx, state_after=state, channel=channel, reason=reason, valid_until=valid_until)

    def promise_to_pay(self, ctx: Context, *, amount: object, promised_on: date, note: str | None = None) -> None:
        state = self._next("promise_to_pay")
        money = to_money(amount, self.currency)
        if money > self.balance:
            raise RuleViolationError(
                "promise.exceeds_balance", f"promised {money} exceeds the balance {self.balance}", field="amount"
            )
        _check_date(promised_on, "promised_on")
        if promised_on < self.local_date(ctx.now):
            raise RuleViolationError("promise.date_in_past", "promised_on is in the past", field="promised_on")
        if ctx.actor.role == CUSTOMER_ROLE:
            self._check_customer_promise(ctx, money, promised_on)
        self._record(self.PromiseMade, ctx, state_after=state, amount=money, promised_on=promised_on, note=note)

    def _check_customer_promise(self, ctx: Context, money: Decimal, promised_on: date) -> None:
        """A customer's own promise stays within the limits the policy's `portal` section sets."""
        limits = ctx.policy.portal
        latest = self.local_date(ctx.now) + timedelta(days=limits.promise_max_days)
        if promised_on > latest:
            raise RuleViolationError(
                "portal.promise_too_far",
                f"a promise made on the portal is for {latest.isoformat()} at the latest ({limits.promise_max_days} days ahead)",
                field="promised_on",
            )
        least = (self.balance * limits.promise_min_percent / 100).quantize(
            Decimal(1).scaleb(-minor_units(self.currency)), rounding=ROUND_UP
        )
        if money < least:
            raise RuleViolationError(
                "portal.promise_too_small",
                f"a promise made on the portal covers at least {limits.promise_min_percent}% of the balance ({least})",
                field="amount",
            )

    def agree_installment_plan(self, ctx: Context, *, installments: list[dict[str, Any]], reason: str) -> None:
        state = self._next("agree_installment_plan")
        _require_text(reason, "reason")
        schedule = self._checked_schedule(ctx, installments)
        self._record(self.InstallmentPlanAgreed, ctx, state_after=state, installments=schedule, reason=reason)

    def _checked_schedule(self, ctx: Context, installments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Dated amounts, each in the future, in increasing order, summing to the balance."""
        if not installments:
            raise RuleViolationError("installments.empty", "an installment plan needs at least one installment", field="installments")
        today = self.local_date(ctx.now)
        schedule: list[dict[str, Any]] = []
        previous: date | None = None
        for i, item in enumerate(installments):
            due_on = item.get("due_on")
            if not isinstance(due_on, date):
                raise RuleViolationError("field.required", "each installment needs a due_on date", field=f"installments[{i}].due_on")
            _check_date(due_on, f"installments[{i}].due_on")
            money = to_money(item.get("amount"), self.currency, field=f"installments[{i}].amount")
            if due_on < today:
                raise RuleViolationError("installments.date_in_past", "installment date is in the past", field=f"installments[{i}].due_on")
            if previous is not None and due_on <= previous:
                raise RuleViolationError(
                    "installments.order", "installment dates must be strictly increasing", field=f"installments[{i}].due_on"
                )
            previous = due_on
            schedule.append({"due_on": due_on, "amount": money})
        total = sum((s["amount"] for s in schedule), Decimal(0))
        if total != self.balance:
            raise RuleViolationError(
                "installments.sum", f"installments sum to {total}, the balance is {self.balance}", field="installments"
            )
        return schedule

    def propose_installment_plan(self, ctx: Context, *, installments: list[dict[str, Any]], note: str | None = None) -> None:
        """The customer proposes a plan: recorded for a collector to accept or decline; within the
        policy's `portal` limits (how many installments, how far ahead)."""
        state = self._next("propose_installment_plan")
        if self.installment_proposal is not None and self.installment_proposal["status"] == "pending":
            raise RuleViolationError("proposal.pending", "a proposed plan is waiting for an answer already")
        limits = ctx.policy.portal
        if len(installments) > limits.plan_max_installments:
            raise RuleViolationError(
                "portal.plan_too_many",
                f"a proposed plan has at most {limits.plan_max_installments} installments",
                field="installments",
            )
        schedule = self._checked_schedule(ctx, installments)
        latest = self.local_date(ctx.now) + timedelta(days=limits.plan_max_days)
        if schedule[-1]["due_on"] > latest:
            raise RuleViolationError(
                "portal.plan_too_long",
                f"a proposed plan ends by {latest.isoformat()} ({limits.plan_max_days} days ahead)",
                field=f"installments[{len(schedule) - 1}].due_on",
            )
        self._record(self.InstallmentPlanProposed, ctx, state_after=state, installments=schedule, note=note)

    def accept_installment_proposal(self, ctx: Context, *, note: str | None = None) -> None:
        """Accept the customer's pending proposal: recorded, then agreed as a plan like any other
        (the schedule checked again against today's balance and date)."""
        target = self._next("accept_installment_proposal")
        schedule = self._checked_schedule(ctx, self._pending_proposal()["installments"])
        self._record(self.InstallmentProposalAccepted, ctx, state_after=self.state, note=note)
        reason = "the customer's proposed plan, accepted" + (f": {note}" if note else "")
        self._record(self.InstallmentPlanAgreed, ctx, state_after=target, installments=schedule, reason=reason)

    def decline_installment_proposal(self, ctx: Context, *, reason: str) -> None:
        state = self._next("decline_installment_proposal")
        _require_text(reason, "reason")
        self._pending_proposal()
        self._record(self.InstallmentProposalDeclined, ctx, state_after=state, reason=reason)

    def _pending_proposal(self) -> dict[str, Any]:
        if self.installment_proposal is None or self.installment_proposal["status"] != "pending":
            raise RuleViolationError("proposal.not_pending", "no proposed plan is waiting for an answer")
        return self.installment_proposal

    def break_promise(self, ctx: Context, *, reason: str) -> None:
        state = self._next("break_promise")
        self._refuse_while_held(ctx, "break_promise")
        _require_text(reason, "reason")
        if not self.is_commitment_broken(self.local_date(ctx.now), ctx.policy.promise_grace_days):
            raise RuleViolationError(
                "promise.not_broken",
                f"the promise is not broken: nothing is unpaid past its date plus {ctx.policy.promise_grace_days} days' grace",
            )
        self._record(self.PromiseBroken, ctx, state_after=state, reason=reason)

    def keep_promise(self, ctx: Context) -> None:
        """The scheduler's (or a person's) note that a covered promise is kept. A payment that
        covers it records this itself; the command serves histories recorded before it did (ADR 0035)."""
        state = self._next("keep_promise")
        if not self.is_promise_covered():
            raise RuleViolationError(
                "promise.not_kept",
                f"the promise is not kept: {self.paid_towards_promise()} paid towards {self.promised_amount()} promised",
            )
        self._record_promise_kept(ctx, state)

    def _record_promise_kept(self, ctx: Context, state: str) -> None:
        promised = self.promised_amount()
        assert promised is not None, "decided by the caller: a promise in force and covered"
        self._record(self.PromiseKept, ctx, state_after=state, amount=promised, paid_towards=self.paid_towards_promise())

    def escalate(self, ctx: Context, *, reason: str) -> None:
        state = self._next("escalate")
        self._refuse_while_held(ctx, "escalate")
        self._check_dunning_minimum(ctx)
        _require_text(reason, "reason")
        self._record(self.Escalated, ctx, state_after=state, reason=reason)

    def approve_legal_referral(self, ctx: Context, *, note: str | None = None) -> None:
        state = self._next("approve_legal_referral")
        if self.legal_referral_approval is not None:
            raise RuleViolationError("legal_referral.already_approved", "a legal referral is approved already")
        self._record(self.LegalReferralApproved, ctx, state_after=state, note=note)

    def refer_to_legal(self, ctx: Context, *, reason: str) -> None:
        state = self._next("refer_to_legal")
        _require_text(reason, "reason")
        breaches = compliance.legal_referral_breaches(ctx, self.legal_referral_approval)
        self._record(self.ReferredToLegal, ctx, breaches=breaches, state_after=state, reason=reason)

    def _check_payment(self, ctx: Context, amount: object, reference: str, paid_on: date, method: str) -> Decimal:
        money = to_money(amount, self.currency)
        _require_choice(method, PAYMENT_METHODS, "method")
        _require_text(reference, "reference")
        if reference in self.payment_references:
            raise RuleViolationError(
                "payment.duplicate_reference", f"a payment with reference '{reference}' is recorded already", field="reference"
            )
        _check_date(paid_on, "paid_on")
        if paid_on > self.local_date(ctx.now):
            raise RuleViolationError("payment.future_date", "paid_on is in the future", field="paid_on")
        return money

    def record_payment(self, ctx: Context, *, amount: object, method: str, paid_on: date, reference: str) -> None:
        lifecycle.next_state(self.state, "record_payment")  # refuse in final states before anything else
        money = self._check_payment(ctx, amount, reference, paid_on, method)
        # Charges are accrued through the day of payment first (ADR 0053), then the payment
        # settles fees, interest and principal in the policy's order (art. 561, ADR 0054).
        accrual = self._accrual(ctx.policy.charges, paid_on) if ctx.policy.charges.charges_anything else None
        outstanding = self._outstanding_after(accrual)
        balance = sum(outstanding.values(), Decimal(0))
        if money > balance:
            raise RuleViolationError(
                "payment.overpayment", f"payment {money} exceeds the balance {balance}", field="amount"
            )
        allocation = None
        if accrual is not None or self.charges_state is not None:
            allocation = charges.allocate(money, outstanding, ctx.policy.charges.allocation_order)
        state = self._next("record_payment", settles=money == balance)
        if accrual is not None:
            self._record(self.ChargesAccrued, ctx, state_after=self.state, **accrual)
        # A payment that covers the promise and leaves a balance keeps it: the receivable goes
        # back to collection in the same command (a full payment settles, which ends the promise).
        keeps = lifecycle.allows(state, "keep_promise") and self.is_promise_covered(extra=money)
        kept_state = lifecycle.next_state(state, "keep_promise") if keeps else None
        self._record(
            self.PaymentRecorded,
            ctx,
            state_after=state,
            amount=money,
            method=method,
            paid_on=paid_on,
            reference=reference,
            allocation=allocation,
        )
        if kept_state is not None:
            self._record_promise_kept(ctx, kept_state)

    def request_write_off(self, ctx: Context, *, reason: str) -> None:
        state = self._next("request_write_off")
        _require_text(reason, "reason")
        if self.write_off_request is not None:
            raise RuleViolationError("write_off.already_requested", "a write-off request is pending already")
        self._record(self.WriteOffRequested, ctx, state_after=state, reason=reason)

    def approve_write_off(self, ctx: Context, *, note: str | None = None) -> None:
        state = self._next("approve_write_off")
        if self.write_off_request is None:
            raise RuleViolationError("write_off.not_requested", "no write-off has been requested")
        breaches = compliance.write_off_breaches(ctx, self.write_off_request["requested_by"])
        self._record(self.WriteOffApproved, ctx, breaches=breaches, state_after=state, note=note, amount=self.balance)

    def raise_dispute(self, ctx: Context, *, reason: str, reason_for_non_payment: str | None = None) -> None:
        state = self._next("raise_dispute")
        _require_text(reason, "reason")
        if self.is_disputed:
            raise RuleViolationError("dispute.already_open", "a dispute is open already")
        self._record(
            self.DisputeRaised,
            ctx,
            state_after=state,
            reason=reason,
            reason_for_non_payment=reason_for_non_payment,
            reason_code=aftercare.classify_reason(reason_for_non_payment, ctx.policy),
        )

    def record_complaint(
        self, ctx: Context, *, channel: str, text: str, severity: str, about_version: int | None = None
    ) -> None:
        """Record a complaint about the collection, maybe about one of this receivable's events."""
        state = self._next("record_complaint")
        _require_choice(channel, CHANNELS, "channel")
        _require_text(text, "text")
        _require_choice(severity, aftercare.SEVERITIES, "severity")
        if about_version is not None and not 1 <= about_version <= self.version:
            raise RuleViolationError(
                "complaint.about_unknown_event",
                f"the receivable has no version {about_version} (it is at version {self.version})",
                field="about_version",
            )
        self._record(
            self.ComplaintRecorded, ctx, state_after=state, channel=channel, text=text, severity=severity,
            about_version=about_version,
        )

    def resolve_complaint(self, ctx: Context, *, outcome: str, action: str, complaint: int | None = None) -> None:
        """A supervisor rules on an open complaint (the only one, or the one named by `complaint`)."""
        state = self._next("resolve_complaint")
        _require_choice(outcome, aftercare.COMPLAINT_OUTCOMES, "outcome")
        _require_text(action, "action")
        open_ids = [c["complaint"] for c in self.open_complaints]
        if not open_ids:
            raise RuleViolationError("complaint.none_open", "there is no open complaint")
        if complaint is None:
            if len(open_ids) > 1:
                raise RuleViolationError(
                    "complaint.which", f"complaints {', '.join(map(str, open_ids))} are open: name one", field="complaint"
                )
            complaint = open_ids[0]
        elif complaint not in open_ids:
            raise RuleViolationError(
                "complaint.not_open", f"no open complaint {complaint}; open: {', '.join(map(str, open_ids))}", field="complaint"
            )
        self._record(self.ComplaintResolved, ctx, state_after=state, complaint=complaint, outcome=outcome, action=action)

    def resolve_dispute(self, ctx: Context, *, resolution: str, adjusted_amount: object | None = None) -> None:
        lifecycle.next_state(self.state, "resolve_dispute")
        _require_text(resolution, "resolution")
        if not self.is_disputed:
            raise RuleViolationError("dispute.not_open", "there is no open dispute")
        adjusted: Decimal | None = None
        settles = False
        if adjusted_amount is not None:
            adjusted = to_money(adjusted_amount, self.currency, field="adjusted_amount", allow_zero=True)
            if adjusted > self.amount - self.adjustment:
                raise RuleViolationError(
                    "dispute.adjustment_increase", "a resolution may lower the amount owed, never raise it", field="adjusted_amount"
                )
            principal_paid = self.amount - self.adjustment - self.principal_balance
            if adjusted < principal_paid:
                raise RuleViolationError(
                    "dispute.adjustment_below_paid", f"{principal_paid} of the principal is paid already", field="adjusted_amount"
                )
            settles = adjusted == principal_paid and self.charges_balance == 0
        # No PromiseKept here: whether a promise is covered depends on what was paid since it
        # and what it promised, and a resolution changes neither (one that settles ends it).
        state = self._next("resolve_dispute", settles=settles)
        balance_after = None
        if adjusted is not None and self.charges_state is not None:
            balance_after = adjusted - principal_paid + self.charges_balance
        self._record(
            self.DisputeResolved,
            ctx,
            state_after=state,
            resolution=resolution,
            adjusted_amount=adjusted,
            balance_after=balance_after,
        )

    def assign_collector(self, ctx: Context, *, collector: str) -> None:
        state = self._next("assign_collector")
        _require_text(collector, "collector")
        self._record(self.CollectorAssigned, ctx, state_after=state, collector=collector)

    def warn_limitation(self, ctx: Context) -> None:
        state = self._next("warn_limitation")
        lapses_on = self.limitation_lapses_on(ctx.policy)
        if self.local_date(ctx.now) < self.limitation_warning_on(ctx.policy):
            raise RuleViolationError(
                "limitation.not_yet", f"the limitation period lapses on {lapses_on}; too early to warn"
            )
        if self.limitation_warned_for == lapses_on:
            raise RuleViolationError("limitation.warned", f"already warned that it lapses on {lapses_on}")
        self._record(self.LimitationWarned, ctx, state_after=state, lapses_on=lapses_on)

    def record_delivery(
        self, ctx: Context, *, message_id: str, channel: str, template: str, delivered_at: datetime
    ) -> None:
        """A message or letter reached the customer (a demand when its template asks for payment)."""
        state = self._next("record_delivery")
        _require_text(message_id, "message_id")
        _require_choice(channel, CHANNELS, "channel")
        _require_text(template, "template")
        if delivered_at.tzinfo is None:
            raise RuleViolationError("field.instant", "delivered_at needs a time zone", field="delivered_at")
        if delivered_at > ctx.now:
            raise RuleViolationError("delivery.future", "delivered_at is in the future", field="delivered_at")
        if delivered_at < EARLIEST_INSTANT:  # compared before any zone conversion, which could overflow
            raise RuleViolationError("field.date_range", f"delivered_at is before {EARLIEST_DATE}", field="delivered_at")
        if self.local_date(delivered_at) < self.issued_on:
            raise RuleViolationError("delivery.before_issue", "delivered_at is before the invoice was issued", field="delivered_at")
        if message_id in self.delivered_messages:
            raise RuleViolationError(
                "delivery.duplicate", f"the delivery of message '{message_id}' is recorded already", field="message_id"
            )
        self._record(
            self.DeliveryRecorded,
            ctx,
            state_after=state,
            message_id=message_id,
            channel=channel,
            template=template,
            delivered_at=delivered_at,
        )

    def record_proceedings(self, ctx: Context, *, kind: str, filed_on: date, case_number: str) -> None:
        """Suit or arbitration filed: restarts the limitation period from `filed_on` (art. 195)."""
        state = self._next("record_proceedings")
        _require_choice(kind, limitation.PROCEEDINGS_KINDS, "kind")
        _require_text(case_number, "case_number")
        _check_date(filed_on, "filed_on")
        if filed_on > self.local_date(ctx.now):
            raise RuleViolationError("proceedings.future_date", "filed_on is in the future", field="filed_on")
        if filed_on < self.issued_on:
            raise RuleViolationError("proceedings.before_issue", "filed_on is before the invoice was issued", field="filed_on")
        if any(p["case_number"] == case_number for p in self.proceedings):
            raise RuleViolationError(
                "proceedings.duplicate", f"case '{case_number}' is recorded already", field="case_number"
            )
        self._record(
            self.ProceedingsRecorded, ctx, state_after=state, kind=kind, filed_on=filed_on, case_number=case_number
        )

    # ---- charges (ADR 0053, 0054) ---------------------------------------------

    def late_fee_day(self, policy: ChargesPolicy) -> date | None:
        """The day the late fee is charged on, while it is still to charge."""
        if policy.late_fee_amount is None or self.charges["fee_charged"]:
            return None
        return self.due_on + timedelta(days=policy.late_fee_after_days)

    def next_accrual_day(self, policy: ChargesPolicy) -> date | None:
        """The day the next scheduled accrual runs through (a month's end, or the late fee's
        day), or None when the policy charges nothing more."""
        if policy.interest_rate_per_annum == 0 and self.late_fee_day(policy) is None:
            return None
        if self.principal_balance <= 0:
            return None
        accrued = max(self.charges["through"] or self.due_on, self.due_on)
        return charges.next_accrual_day(accrued, self.late_fee_day(policy))

    def _accrual(self, policy: ChargesPolicy, through: date) -> dict[str, Any] | None:
        """The fields of the accrual through `through`, or None when nothing is left to accrue
        by then (not yet past due, or accrued through that day already)."""
        accrued = max(self.charges["through"] or self.due_on, self.due_on)
        if through <= accrued:
            return None
        days = (through - accrued).days
        principal = self.principal_balance
        rate = policy.interest_rate_per_annum
        added = charges.basis(principal, rate, days)
        interest = charges.interest_through(charges.add_basis(self.charges["basis"], added), self.currency) - self.charges["interest"]
        fee = self.amount * 0
        fee_day = self.late_fee_day(policy)
        if fee_day is not None and fee_day <= through and principal > 0:
            assert policy.late_fee_amount is not None
            fee = charges.to_minor_units(policy.late_fee_amount, self.currency)
        return {
            "since": accrued + timedelta(days=1),
            "through": through,
            "days": days,
            "rate": rate,
            "principal": principal,
            "basis": added,
            "interest": interest,
            "fee": fee,
        }

    def _outstanding_after(self, accrual: dict[str, Any] | None) -> dict[str, Decimal]:
        parts = self.balance_breakdown
        if accrual is not None:
            parts["interest"] += accrual["interest"]
            parts["fees"] += accrual["fee"]
        return parts

    def accrue_charges(self, ctx: Context, *, through: date | None = None) -> None:
        """Accrue interest (and the late fee when its day has come) through `through`
        (default: today in the customer's time zone). Each day is accrued once."""
        state = self._next("accrue_charges")
        today = self.local_date(ctx.now)
        through = today if through is None else _check_date(through, "through")
        if through > today:
            raise RuleViolationError("charges.future", f"{through} is after today ({today})", field="through")
        if not ctx.policy.charges.charges_anything and self.charges_state is None:
            raise RuleViolationError("charges.none", f"policy {ctx.policy.version} charges no interest or fees")
        accrual = self._accrual(ctx.policy.charges, through)
        if accrual is None:
            accrued = max(self.charges["through"] or self.due_on, self.due_on)
            raise RuleViolationError(
                "charges.accrued", f"charges are accrued through {accrued} already (due {self.due_on})", field="through"
            )
        self._record(self.ChargesAccrued, ctx, state_after=state, **accrual)

    def waive_charges(self, ctx: Context, *, amount: object, reason: str) -> None:
        """A supervisor waives interest and fees (fees first in the default order); above the
        policy's threshold the waiver waits for a second supervisor's approval."""
        lifecycle.next_state(self.state, "waive_charges")
        money = to_money(amount, self.currency)
        _require_text(reason, "reason")
        self._check_waivable(money)
        threshold = ctx.policy.charges.waiver_second_approval_above
        if threshold is not None and money > charges.to_minor_units(threshold, self.currency):
            state = self._next("waive_charges")
            self._record(self.ChargesWaiverRequested, ctx, state_after=state, amount=money, reason=reason)
            return
        self._record_waiver(ctx, money, reason, requested_by=None, note=None)

    def approve_charges_waiver(self, ctx: Context, *, note: str | None = None) -> None:
        """A second supervisor approves the waiver waiting for approval (four eyes)."""
        lifecycle.next_state(self.state, "approve_charges_waiver")
        waiver = self.charges["waiver"]
        if waiver is None:
            raise RuleViolationError("charges_waiver.not_requested", "no waiver of charges is waiting for approval")
        if waiver["requested_by"] == ctx.actor.id:
            raise RuleViolationError(
                "charges_waiver.four_eyes", "a waiver above the threshold needs a supervisor other than its requester"
            )
        self._check_waivable(waiver["amount"])
        self._record_waiver(ctx, waiver["amount"], waiver["reason"], requested_by=waiver["requested_by"], note=note)

    def _check_waivable(self, money: Decimal) -> None:
        if money > self.charges_balance:
            raise RuleViolationError(
                "charges_waiver.exceeds",
                f"waiving {money} exceeds the charges outstanding ({self.charges_balance})",
                field="amount",
            )

    def _record_waiver(self, ctx: Context, money: Decimal, reason: str, *, requested_by: str | None, note: str | None) -> None:
        parts = charges.waive(money, self.balance_breakdown, ctx.policy.charges.allocation_order)
        command = "waive_charges" if requested_by is None else "approve_charges_waiver"
        state = self._next(command, settles=money == self.balance)
        self._record(
            self.ChargesWaived,
            ctx,
            state_after=state,
            amount=money,
            reason=reason,
            fees=parts["fees"],
            interest=parts["interest"],
            requested_by=requested_by,
            note=note,
        )

    def record_recovery(self, ctx: Context, *, amount: object, method: str, paid_on: date, reference: str) -> None:
        state = self._next("record_recovery")
        money = self._check_payment(ctx, amount, reference, paid_on, method)
        if money > self.written_off_amount - self.recovered:
            raise RuleViolationError(
                "recovery.exceeds_written_off",
                f"recovery {money} exceeds what is written off and not yet recovered",
                field="amount",
            )
        self._record(
            self.RecoveryRecorded, ctx, state_after=state, amount=money, method=method, paid_on=paid_on, reference=reference
        )

    def hold(
        self, ctx: Context, *, reason: str, until: datetime | None = None, scope: str = "receivable", placed_by: str | None = None
    ) -> None:
        """Put collection on hold (a supervisor; scope `customer` when the customer's hold is copied
        here): nothing time-driven that acts fires and nothing is sent until it is released or
        `until` passes. A hold replaces the one of its scope."""
        state = self._next("hold")
        _require_text(reason, "reason")
        _require_choice(scope, holds.SCOPES, "scope")
        until = holds.check_until(until, ctx.now)
        self._record(self.HoldPlaced, ctx, state_after=state, scope=scope, reason=reason, until=until, placed_by=placed_by)

    def release_hold(self, ctx: Context, *, reason: str, scope: str | None = None) -> None:
        """Release the holds in force (of `scope` only, when given): collection resumes from now,
        catching up what came due while held (domain/holds.py)."""
        state = self._next("release_hold")
        _require_text(reason, "reason")
        releasing = [h.scope for h in self.holds_in_force(ctx.now) if scope is None or h.scope == scope]
        if not releasing:
            raise RuleViolationError(
                "hold.not_in_force", "the receivable is not on hold" if scope is None else f"no {scope} hold is in force"
            )
        self._record(self.HoldReleased, ctx, state_after=state, scopes=releasing, reason=reason)

    def _refuse_while_held(self, ctx: Context, command: str) -> None:
        """Time does not fire a suspended command while a hold is in force (people still may act)."""
        if ctx.scheduled_for is None or not holds.suspends(command):
            return
        current = self.holds_in_force(ctx.now)
        if current:
            raise RuleViolationError(
                "hold.in_force", f"'{command}' waits: collection is on hold ({'; '.join(map(holds.describe, current))})"
            )

