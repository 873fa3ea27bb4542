"""Given / when / then for the pure domain.

A test builds a `Context` at an instant and for an actor, describes commands as
`Call`s, builds a receivable from them with `given(...)`, sends one more with
`when(...)` and looks at the events it recorded, or checks a refusal with
`then_refused(...)` / `then_not_allowed(...)`, which also check that the
refused command left the aggregate exactly as it was.

The standard story: a CNY 1,000.00 invoice to a customer in Shanghai, issued
on Monday 2024-01-08 and due on Wednesday 2024-02-07.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from collections_es.domain.errors import CommandNotAllowedError, RuleViolationError
from collections_es.domain.money import to_money
from collections_es.domain.policy import ChargesPolicy, CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor, Context

_MORNINGS = [{"start": "09:00", "end": "12:00"}]
POLICY = CollectionPolicy(
    version="test-1", contact={"windows": {day: _MORNINGS for day in ("mon", "tue", "wed", "thu", "fri")}}
)

TZ = "Asia/Shanghai"
INVOICE = "INV-2024-0001"
AMOUNT = "1000.00"
CURRENCY = "CNY"
ISSUED_ON = date(2024, 1, 8)
DUE_ON = date(2024, 2, 7)

# Instants are UTC; Shanghai is UTC+8, so 02:00Z is 10:00 local time.
ISSUE_TIME = "2024-01-08T02:00:00+00:00"
REMIND_TIME = "2024-02-01T02:00:00+00:00"  # within the 7 days before the due date
DUE_TIME = "2024-02-07T02:00:00+00:00"  # the due date, local time
LATER = "2024-02-20T02:00:00+00:00"  # two weeks past due

COLLECTOR = Actor("collector:ann", "collector")
OTHER_COLLECTOR = Actor("collector:bob", "collector")
SUPERVISOR = Actor("supervisor:sue", "supervisor")
CUSTOMER_SERVICE = Actor("customer_service:cai", "customer_service")
SCHEDULER = Actor(SCHEDULER_ACTOR, "system")
NOTIFIER = Actor("system:notifier", "service")
LAWYER = Actor("legal:li", "legal")

#: A placeholder for "the receivable's local date at the moment of the call".
TODAY = "<today>"

_references = itertools.count(1)


def instant(when: datetime | str) -> datetime:
    """An aware datetime from a datetime or an ISO 8601 string."""
    moment = when if isinstance(when, datetime) else datetime.fromisoformat(when)
    assert moment.tzinfo is not None, "test instants must be time-zone aware"
    return moment


def context(
    when: datetime | str = LATER,
    actor: Actor = COLLECTOR,
    *,
    correlation_id: str = "corr-test",
    policy: CollectionPolicy = POLICY,
    **extra: Any,
) -> Context:
    """The context of a command sent at `when` by `actor`."""
    return Context(actor=actor, now=instant(when), correlation_id=correlation_id, policy=policy, **extra)


@dataclass(frozen=True)
class Call:
    """One command, its arguments and the context it is sent in."""

    command: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    ctx: Context = field(default_factory=context)

    def run(self, receivable: Receivable | None) -> Receivable:
        if self.command == "issue":
            assert receivable is None, "issue starts a new receivable"
            return Receivable.issue(self.ctx, **self.kwargs)
        assert receivable is not None, "a receivable must be issued first"
        kwargs = {k: receivable.local_date(self.ctx.now) if v == TODAY else v for k, v in self.kwargs.items()}
        getattr(receivable, self.command)(self.ctx, **kwargs)
        return receivable

    def at(self, when: datetime | str) -> Call:
        return replace(self, ctx=replace(self.ctx, now=instant(when)))

    def by(self, actor: Actor) -> Call:
        return replace(self, ctx=replace(self.ctx, actor=actor))

    def with_(self, **kwargs: Any) -> Call:
        return replace(self, kwargs={**self.kwargs, **kwargs})

    def in_context(self, ctx: Context) -> Call:
        return replace(self, ctx=ctx)


def call(command: str, *, at: datetime | str = LATER, by: Actor = COLLECTOR, **kwargs: Any) -> Call:
    return Call(command, kwargs, context(at, by))


# ---- the commands, with defaults that fit the standard story ----------------


def issue(*, at: datetime | str = ISSUE_TIME, by: Actor = SCHEDULER, **overrides: Any) -> Call:
    kwargs = {
        "invoice_number": INVOICE,
        "customer_id": "CUST-1",
        "timezone": TZ,
        "amount": AMOUNT,
        "currency": CURRENCY,
        "issued_on": ISSUED_ON,
        "due_on": DUE_ON,
        "collector": "collector:ann",
    }
    return Call("issue", {**kwargs, **overrides}, context(at, by))


def send_reminder(*, channel: str = "email", at: datetime | str = REMIND_TIME, by: Actor = SCHEDULER) -> Call:
    return call("send_reminder", at=at, by=by, channel=channel)


def fall_due(*, at: datetime | str = DUE_TIME, by: Actor = SCHEDULER) -> Call:
    return call("fall_due", at=at, by=by)


def start_follow_up(*, at: datetime | str = LATER, by: Actor = COLLECTOR, **kwargs: Any) -> Call:
    return call("start_follow_up", at=at, by=by, **kwargs)


def record_contact(
    *,
    channel: str = "phone",
    outcome: str = "reached",
    note: str = "spoke to accounts payable",
    at: datetime | str = LATER,
    by: Actor = COLLECTOR,
    **kwargs: Any,
) -> Call:
    return call("record_contact", at=at, by=by, channel=channel, outcome=outcome, note=note, **kwargs)


def promise_to_pay(
    amount: object = "400.00", *, promised_on: date = date(2024, 3, 1), at: datetime | str = LATER, by: Actor = COLLECTOR
) -> Call:
    return call("promise_to_pay", at=at, by=by, amount=amount, promised_on=promised_on)


def agree_installment_plan(
    installments: list[dict[str, Any]] | None = None,
    *,
    reason: str = "cash flow",
    at: datetime | str = LATER,
    by: Actor = COLLECTOR,
) -> Call:
    if installments is None:
        installments = [
            {"due_on": date(2024, 3, 1), "amount": "500.00"},
            {"due_on": date(2024, 4, 1), "amount": "500.00"},
        ]
    return call("agree_installment_plan", at=at, by=by, installments=installments, reason=reason)


def grant_contact_exception(
    *,
    channel: str = "phone",
    reason: str = "customer asked for an evening call",
    valid_until: datetime | str = "2024-02-27T02:00:00+00:00",
    at: datetime | str = LATER,
    by: Actor = SUPERVISOR,
) -> Call:
    return call("grant_contact_exception", at=at, by=by, channel=channel, reason=reason, valid_until=instant(valid_until))


#: After the default promise date (2024-03-01) plus the policy's 3 days of grace.
AFTER_PROMISE = "2024-03-10T02:00:00+00:00"


def break_promise(
    *, reason: str = "promised date passed", at: datetime | str = AFTER_PROMISE, by: Actor = SCHEDULER
) -> Call:
    return call("break_promise", at=at, by=by, reason=reason)


def keep_promise(*, at: datetime | str = LATER, by: Actor = SCHEDULER) -> Call:
    return call("keep_promise", at=at, by=by)


@dataclass(frozen=True)
class PaymentBeforeTheFix(Call):
    """A payment recorded as before issue 11: `PaymentRecorded` alone, in the state it found,
    even when it covers the promise. Builds the histories parked in `promised` (ADR 0035)."""

    def run(self, receivable: Receivable | None) -> Receivable:
        assert receivable is not None, "a receivable must be issued first"
        kwargs = {k: receivable.local_date(self.ctx.now) if v == TODAY else v for k, v in self.kwargs.items()}
        amount = to_money(kwargs.pop("amount"), receivable.currency)
        assert amount < receivable.balance, "a payment before the fix that leaves a balance"
        receivable._record(Receivable.PaymentRecorded, self.ctx, state_after=receivable.state, amount=amount, **kwargs)
        return receivable


def record_payment_before_the_fix(
    amount: object = "400.00", *, reference: str | None = None, at: datetime | str = LATER, by: Actor = SCHEDULER
) -> Call:
    reference = f"OLD-{next(_references)}" if reference is None else reference
    kwargs = {"amount": amount, "method": "bank_transfer", "paid_on": TODAY, "reference": reference}
    return PaymentBeforeTheFix("record_payment", kwargs, context(at, by))


def escalate(*, reason: str = "30 days past due", at: datetime | str = LATER, by: Actor = COLLECTOR) -> Call:
    return call("escalate", at=at, by=by, reason=reason)


def approve_legal_referral(*, note: str | None = "evidence complete", at: datetime | str = LATER, by: Actor = SUPERVISOR) -> Call:
    return call("approve_legal_referral", at=at, by=by, note=note)


def refer_to_legal(*, reason: str = "no response", at: datetime | str = LATER, by: Actor = SUPERVISOR) -> Call:
    return call("refer_to_legal", at=at, by=by, reason=reason)


def record_payment(
    amount: object = "100.00",
    *,
    reference: str | None = None,
    method: str = "bank_transfer",
    paid_on: date | str = TODAY,
    at: datetime | str = LATER,
    by: Actor = SCHEDULER,
) -> Call:
    reference = f"PAY-{next(_references)}" if reference is None else reference
    return call("record_payment", at=at, by=by, amount=amount, method=method, paid_on=paid_on, reference=reference)


def request_write_off(*, reason: str = "customer insolvent", at: datetime | str = LATER, by: Actor = COLLECTOR) -> Call:
    return call("request_write_off", at=at, by=by, reason=reason)


def approve_write_off(*, note: str | None = "agreed", at: datetime | str = LATER, by: Actor = SUPERVISOR) -> Call:
    return call("approve_write_off", at=at, by=by, note=note)


def raise_dispute(*, reason: str = "goods damaged", at: datetime | str = LATER, by: Actor = COLLECTOR) -> Call:
    return call("raise_dispute", at=at, by=by, reason=reason)


def resolve_dispute(
    adjusted_amount: object | None = None,
    *,
    resolution: str = "credit note agreed",
    at: datetime | str = LATER,
    by: Actor = SUPERVISOR,
) -> Call:
    return call("resolve_dispute", at=at, by=by, resolution=resolution, adjusted_amount=adjusted_amount)


def assign_collector(collector: str = "collector:bob", *, at: datetime | str = LATER, by: Actor = SUPERVISOR) -> Call:
    return call("assign_collector", at=at, by=by, collector=collector)


def record_recovery(
    amount: object = "100.00",
    *,
    reference: str | None = None,
    method: str = "bank_transfer",
    paid_on: date | str = TODAY,
    at: datetime | str = LATER,
    by: Actor = SCHEDULER,
) -> Call:
    reference = f"REC-{next(_references)}" if reference is None else reference
    return call("record_recovery", at=at, by=by, amount=amount, method=method, paid_on=paid_on, reference=reference)


#: Due 2024-02-07, three years of limitation, warned 90 days before it lapses.
LIMITATION_WARNING_TIME = "2026-12-01T02:00:00+00:00"


def warn_limitation(*, at: datetime | str = LIMITATION_WARNING_TIME, by: Actor = SCHEDULER) -> Call:
    return call("warn_limitation", at=at, by=by)


_messages = itertools.count(1)


def record_delivery(
    *,
    template: str = "first_dunning",
    channel: str = "email",
    message_id: str | None = None,
    delivered_at: datetime | str | None = None,
    at: datetime | str = LATER,
    by: Actor = NOTIFIER,
) -> Call:
    """The notifier records a message its transport accepted (by default at the moment of the call)."""
    message_id = f"MSG-{next(_messages)}" if message_id is None else message_id
    delivered = instant(delivered_at if delivered_at is not None else at)
    return call(
        "record_delivery", at=at, by=by, message_id=message_id, channel=channel, template=template, delivered_at=delivered
    )


def record_proceedings(
    *,
    kind: str = "suit",
    filed_on: date | str = TODAY,
    case_number: str = "(2024)沪0115民初1号",
    at: datetime | str = LATER,
    by: Actor = LAWYER,
) -> Call:
    return call("record_proceedings", at=at, by=by, kind=kind, filed_on=filed_on, case_number=case_number)


def hold(
    *,
    reason: str = "negotiating a settlement",
    until: datetime | str | None = None,
    scope: str = "receivable",
    at: datetime | str = LATER,
    by: Actor = SUPERVISOR,
) -> Call:
    return call("hold", at=at, by=by, reason=reason, until=None if until is None else instant(until), scope=scope)


def release_hold(*, reason: str = "talks ended", scope: str | None = None, at: datetime | str = LATER, by: Actor = SUPERVISOR) -> Call:
    return call("release_hold", at=at, by=by, reason=reason, scope=scope)


def remind_installment(*, channel: str = "email", at: datetime | str = LATER, by: Actor = COLLECTOR) -> Call:
    return call("remind_installment", at=at, by=by, channel=channel)


#: The standard policy under its next version (a re-plan follows it).
POLICY_2 = POLICY.model_copy(update={"version": "test-2"})


def replan(
    *,
    reason: str = "policy test-2 adopted",
    at: datetime | str = LATER,
    by: Actor = SUPERVISOR,
    policy: CollectionPolicy = POLICY_2,
    strategy: str | None = None,
    contact_hours: list[dict[str, str]] | None = None,
) -> Call:
    """The receivable follows `policy` (the effective one) and `strategy` from now."""
    return Call("replan", {"reason": reason, "contact_hours": contact_hours}, context(at, by, policy=policy, strategy=strategy))


#: The standard policy with charges (docs/charges.md): 3.65% a year (0.01% a day), a CNY 50.00
#: late fee 10 days past due, waivers above 20.00 approved by a second supervisor.
CHARGING_POLICY = POLICY.model_copy(
    update={
        "version": "test-charges",
        "charges": ChargesPolicy(
            interest_rate_per_annum=Decimal("0.0365"),
            late_fee_amount=Decimal("50"),
            late_fee_after_days=10,
            waiver_second_approval_above=Decimal("20"),
        ),
    }
)
OTHER_SUPERVISOR = Actor("supervisor:tom", "supervisor")


def accrue_charges(
    *, through: date | None = None, at: datetime | str = LATER, by: Actor = SCHEDULER, policy: CollectionPolicy = CHARGING_POLICY
) -> Call:
    kwargs = {} if through is None else {"through": through}
    return Call("accrue_charges", kwargs, context(at, by, policy=policy))


def waive_charges(
    amount: object = "10.00",
    *,
    reason: str = "goodwill",
    at: datetime | str = LATER,
    by: Actor = SUPERVISOR,
    policy: CollectionPolicy = CHARGING_POLICY,
) -> Call:
    return Call("waive_charges", {"amount": amount, "reason": reason}, context(at, by, policy=policy))


def approve_charges_waiver(
    *, note: str | None = "agreed", at: datetime | str = LATER, by: Actor = OTHER_SUPERVISOR, policy: CollectionPolicy = CHARGING_POLICY
) -> Call:
    return Call("approve_charges_waiver", {"note": note}, context(at, by, policy=policy))
CUSTOMER = Actor("customer:C-1", "customer")


def propose_installment_plan(
    installments: list[dict[str, Any]] | None = None,
    *,
    note: str | None = "two halves, please",
    at: datetime | str = LATER,
    by: Actor = CUSTOMER,
) -> Call:
    if installments is None:
        installments = [
            {"due_on": date(2024, 3, 1), "amount": "500.00"},
            {"due_on": date(2024, 4, 1), "amount": "500.00"},
        ]
    return call("propose_installment_plan", at=at, by=by, installments=installments, note=note)


def accept_installment_proposal(*, note: str | None = None, at: datetime | str = LATER, by: Actor = COLLECTOR) -> Call:
    return call("accept_installment_proposal", at=at, by=by, note=note)


def decline_installment_proposal(
    *, reason: str = "we need half now", at: datetime | str = LATER, by: Actor = COLLECTOR
) -> Call:
    return call("decline_installment_proposal", at=at, by=by, reason=reason)


#: A valid call for each lifecycle command, for tests that sweep over commands.
SAMPLE_CALLS = {
    "send_reminder": send_reminder,
    "fall_due": fall_due,
    "start_follow_up": start_follow_up,
    "record_contact": record_contact,
    "promise_to_pay": promise_to_pay,
    "agree_installment_plan": agree_installment_plan,
    "break_promise": break_promise,
    "keep_promise": keep_promise,
    "escalate": escalate,
    "approve_legal_referral": approve_legal_referral,
    "refer_to_legal": refer_to_legal,
    "record_payment": record_payment,
    "request_write_off": request_write_off,
    "approve_write_off": approve_write_off,
    "raise_dispute": raise_dispute,
    "resolve_dispute": resolve_dispute,
    "assign_collector": assign_collector,
    "record_recovery": record_recovery,
    "warn_limitation": warn_limitation,
    "grant_contact_exception": grant_contact_exception,
    "record_delivery": record_delivery,
    "record_proceedings": record_proceedings,
    "hold": hold,
    "release_hold": release_hold,
    "remind_installment": remind_installment,
    "replan": replan,
    "accrue_charges": accrue_charges,
    "waive_charges": waive_charges,
    "approve_charges_waiver": approve_charges_waiver,
    "propose_installment_plan": propose_installment_plan,
    "accept_installment_proposal": accept_installment_proposal,
    "decline_installment_proposal": decline_installment_proposal,
}


def record_complaint(
    *, text: str = "called at lunch", severity: str = "medium", about_version: int | None = None,
    at: datetime | str = LATER, by: Actor = CUSTOMER_SERVICE,
) -> Call:
    return call("record_complaint", at=at, by=by, channel="phone", text=text, severity=severity, about_version=about_version)


def resolve_complaint(
    *, outcome: str = "upheld", action: str = "apologised", complaint: int | None = None,
    at: datetime | str = LATER, by: Actor = SUPERVISOR,
) -> Call:
    return call("resolve_complaint", at=at, by=by, outcome=outcome, action=action, complaint=complaint)


SAMPLE_CALLS["record_complaint"] = record_complaint
SAMPLE_CALLS["resolve_complaint"] = resolve_complaint


def sample_call(command: str) -> Call:
    return SAMPLE_CALLS[command]()


def path_to(state: str) -> list[Call]:
    """Commands that take the standard receivable to `state`."""
    paths: dict[str, list[Call]] = {
        "issued": [issue()],
        "reminded": [issue(), send_reminder()],
        "due": [issue(), fall_due()],
        "following_up": [issue(), fall_due(), start_follow_up()],
        "promised": [issue(), fall_due(), promise_to_pay()],
        "overdue_escalated": [issue(), fall_due(), escalate()],
        "legal": [issue(), fall_due(), escalate(), refer_to_legal()],
        "settled": [issue(), fall_due(), record_payment(AMOUNT)],
        "written_off": [issue(), fall_due(), escalate(), request_write_off(), approve_write_off()],
    }
    return paths[state]


# ---- given / when / then ----------------------------------------------------


def story(*calls: Call) -> tuple[Receivable, list[Any]]:
    """Run the calls in order; the receivable and every event they recorded."""
    receivable: Receivable | None = None
    for c in calls:
        receivable = c.run(receivable)
    assert receivable is not None
    return receivable, list(receivable.collect_events())


def given(*calls: Call) -> Receivable:
    """A receivable built by running the calls, with no pending events left."""
    receivable, _ = story(*calls)
    return receivable


def given_in(state: str, *more: Call) -> Receivable:
    """A standard receivable brought to `state`, then the further calls."""
    receivable = given(*path_to(state), *more)
    assert receivable.state == state or more
    return receivable


def when(receivable: Receivable, c: Call) -> list[Any]:
    """Send one command; the events it recorded."""
    assert not receivable.collect_events(), "given(...) leaves no pending events"
    c.run(receivable)
    return list(receivable.collect_events())


def names(events: Iterable[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def replay(events: Iterable[Any], aggregate: Any = None) -> Any:
    """Rebuild an aggregate from its events, as the event store does."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _refused(receivable: Receivable, c: Call, error: type[Exception]) -> Any:
    before = copy.deepcopy(receivable)
    with pytest.raises(error) as info:
        c.run(receivable)
    assert receivable == before, "a refused command must leave the aggregate unchanged"
    assert receivable.version == before.version
    assert not receivable.collect_events(), "a refused command must record no event"
    return info.value


def then_refused(receivable: Receivable, c: Call, rule_id: str, *, field: str | None = None) -> RuleViolationError:
    """The command breaks `rule_id`; the aggregate is untouched."""
    err = _refused(receivable, c, RuleViolationError)
    assert err.rule_id == rule_id, f"refused by {err.rule_id!r} ({err.detail}), expected {rule_id!r}"
    if field is not None:
        assert err.field == field
    return err


def then_not_allowed(receivable: Receivable, c: Call) -> CommandNotAllowedError:
    """The lifecycle refuses the command in the current state; the aggregate is untouched."""
    err = _refused(receivable, c, CommandNotAllowedError)
    assert err.command == c.command
    assert err.state == receivable.state
    return err
