"""Domain objects → response schemas (types converted at the edge)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..application.access import PII_ROLES
from ..application.commands import allowed_actions as declared_actions
from ..application.pii import Redactor, mask  # noqa: F401 - `present.mask` is what routes mask recipients with
from ..domain import holds, lifecycle
from ..domain.customer import Customer, customer_uuid
from ..domain.money import format_money
from ..domain.policy import CollectionPolicy
from ..domain.receivable import Receivable, receivable_id
from ..domain.strategy import effective, hours_of
from .schemas.strategies import PlannedStepOut, PolicyPlanOut, PolicySimulationOut, ReceivablePlanOut
from ..domain.trail import TRAIL_FIELDS
from . import schemas


def resolve_id(ref: str) -> uuid.UUID:
    """A receivable is named by its id, or by its invoice number (from which the id derives)."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return receivable_id(ref)


def allowed_actions(rid: uuid.UUID | str, commands: list[str]) -> list[schemas.AllowedAction]:
    """Each allowed command with the request that sends it to this receivable (from the declaration)."""
    return [schemas.AllowedAction(**action) for action in declared_actions(str(rid), commands)]


def receivable(
    r: Receivable,
    now: datetime,
    policy: CollectionPolicy,
    *,
    as_of: datetime | None = None,
    redactor: Redactor | None = None,
) -> schemas.ReceivablePublic:
    """The receivable; with a `redactor` (roles without need of PII), contact details quoted
    in its dispute and write-off reasons are masked. Its figures (limitation, legal referral)
    are `policy`'s as the strategy the receivable follows makes it (ADR 0050)."""
    policy = effective(policy, r.strategy, hours_of(r.contact_hours))
    text = redactor.text if redactor is not None else _same
    promise = None
    if r.promise is not None:
        promise = schemas.PromiseOut(
            amount=format_money(r.promise["amount"]),
            promised_on=r.promise["promised_on"],
            paid_towards=format_money(r.paid_towards_promise()),
        )
    plan = None
    if r.installment_plan is not None:
        plan = schemas.InstallmentPlanOut(
            installments=[
                schemas.InstallmentOut(due_on=i["due_on"], amount=format_money(i["amount"]))
                for i in r.installment_plan["installments"]
            ],
            paid_towards=format_money(r.paid_towards_promise()),
        )
    return schemas.ReceivablePublic(
        id=str(r.id),
        invoice_number=r.invoice_number,
        customer_id=r.customer_id,
        state=r.state,
        amount=format_money(r.amount),
        currency=r.currency,
        balance=format_money(r.balance),
        balance_breakdown=schemas.BalanceBreakdownOut(**{k: format_money(v) for k, v in r.balance_breakdown.items()}),
        charges=charges_out(r, text),
        paid=format_money(r.paid),
        written_off_amount=format_money(r.written_off_amount),
        recovered=format_money(r.recovered),
        issued_on=r.issued_on,
        due_on=r.due_on,
        days_past_due=r.days_past_due(now) if r.state not in lifecycle.FINAL_STATES else 0,
        legal_referral_suggested=r.is_legal_referral_suggested(now, policy),
        collector=r.collector,
        promise=promise,
        installment_plan=plan,
        dispute=schemas.DisputeOut(**r.dispute | {"reason": text(r.dispute["reason"])}) if r.dispute else None,
        write_off_request=(
            schemas.WriteOffRequestOut(**r.write_off_request | {"reason": text(r.write_off_request["reason"])})
            if r.write_off_request
            else None
        ),
        timezone=r.timezone,
        version=r.version,
        allowed_commands=lifecycle.allowed_commands(r.state),
        allowed_actions=allowed_actions(r.id, lifecycle.allowed_commands(r.state)),
        policy_version=r.policy_version,
        strategy=r.strategy,
        limitation=limitation_out(r, policy),
        open_complaints=[schemas.OpenComplaintOut(**c) for c in r.open_complaints],
        as_of=as_of,
        holds=[hold_out(h, text) for h in r.holds_in_force(as_of or now)],
        installment_proposal=proposal_out(r.installment_proposal, text),
    )


def hold_out(hold: holds.Hold, text: Any = None) -> schemas.HoldOut:
    """A hold in force; its reason is free text (masked by a redactor's `text`)."""
    return schemas.HoldOut(**hold.as_dict() | {"reason": (text or _same)(hold.reason)})


def charges_out(r: Receivable, text: Any = None) -> schemas.ChargesOut:
    """Interest and fees so far; `text` masks contact details quoted in a waiver's reason."""
    text = text or _same
    c = r.charges
    waiver = c["waiver"]
    return schemas.ChargesOut(
        accrued_through=c["through"],
        **{
            f"{name}_{what}": format_money(c[name if what == "accrued" else f"{name}_{what}"])
            for name in ("interest", "fees")
            for what in ("accrued", "paid", "waived")
        },
        waiver_request=(
            schemas.ChargesWaiverOut(
                amount=format_money(waiver["amount"]), reason=text(waiver["reason"]), requested_by=waiver["requested_by"]
            )
            if waiver
            else None
        ),
    )


def proposal_out(proposal: dict[str, Any] | None, text: Any = None) -> schemas.InstallmentProposalOut | None:
    """The customer's last proposed plan (portal), free text masked by `text` when given."""
    if proposal is None:
        return None
    text = text or _same
    return schemas.InstallmentProposalOut(
        status=proposal["status"],
        installments=[schemas.InstallmentOut(due_on=i["due_on"], amount=format_money(i["amount"])) for i in proposal["installments"]],
        note=text(proposal["note"]) if proposal["note"] else None,
        proposed_at=proposal["proposed_at"],
        decided_by=proposal.get("decided_by"),
        decided_at=proposal.get("decided_at"),
        decision=text(proposal["decision"]) if proposal.get("decision") else None,
    )


def after_command(
    command: str, r: Receivable, now: datetime, policy: CollectionPolicy, *, redactor: Redactor | None = None
) -> schemas.ReceivablePublic:
    """The response to a lifecycle command: the receivable, and for a contact what it broke."""
    public = receivable(r, now, policy, redactor=redactor)
    if command == "record_contact":
        findings = [schemas.ContactFindingOut(**vars(f)) for f in r.last_contact_findings()]
        if redactor is not None:  # an exception's reason is free text
            findings = [f.model_copy(update={"detail": redactor.text(f.detail)}) for f in findings]
        return schemas.ContactRecordedOut(**public.model_dump(), findings=findings)
    return public


def contact_check(result: Any) -> schemas.ContactCheckOut:
    return schemas.ContactCheckOut(
        allowed=result.allowed,
        channel=result.channel,
        at=result.at,
        breaches=[schemas.BreachOut(rule_id=b.rule_id, detail=b.detail) for b in result.breaches],
        overrides=[schemas.ContactFindingOut(**vars(f)) for f in result.overrides],
        next_allowed_at=result.next_allowed_at,
    )


def limitation_out(r: Receivable, policy: CollectionPolicy) -> schemas.LimitationOut:
    period = r.limitation_period
    last = period.last_interruption
    return schemas.LimitationOut(
        started_on=period.started_on,
        lapses_on=period.lapses_on(policy.limitation_period_years),
        last_interruption=schemas.LimitationInterruptionOut(**last) if last else None,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def redactor_unless_pii(role: str, app: Any, customer_id: str | None) -> Redactor | None:
    """None for roles that see contact details in full, else `redactor_for` the customer."""
    return None if role in PII_ROLES else redactor_for(app, customer_id)


def redactor_for(app: Any, customer_id: str | None) -> Redactor:
    """A redactor that knows every contact detail the customer's file ever held
    (none when there is no such customer)."""
    redactor = Redactor()
    if customer_id:
        redactor.learn_events(app.events.get(customer_uuid(customer_id)))
    return redactor


def history_entry(event: Any, redactor: Redactor | None = None) -> schemas.HistoryEntry:
    """One event of a history; with a `redactor` (roles without need of PII), contact
    details in its data and free text are masked."""
    data = {
        f.name: _jsonable(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name not in TRAIL_FIELDS
    }
    if redactor is not None:
        data = redactor.data(data)
    reason = data.get("reason") or data.get("note") or data.get("resolution")
    return schemas.HistoryEntry(
        version=event.originator_version,
        type=type(event).__name__,
        occurred_at=event.timestamp,
        actor=event.actor_id,
        role=event.actor_role,
        reason=reason,
        data=data,
        state_after=event.state_after,
        correlation_id=event.correlation_id,
        policy_version=event.policy_version,
        strategy=event.strategy,
        scheduled_for=event.scheduled_for,
        override=redactor.data(event.override) if redactor is not None and event.override else event.override,
        hash=event.hash,
        prev_hash=event.prev_hash,
    )


def _same(value: str | None) -> str | None:
    return value


CONTACT_TEXT = ("note", "customer_attitude", "reason_for_non_payment", "next_step")


def contact_entry(row: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    """A contact-log row as shown: with a `redactor`, contact details quoted in its free text masked."""
    if redactor is None:
        return row
    return {k: redactor.text(v) if k in CONTACT_TEXT else v for k, v in row.items()}


def money_out(amount: Decimal | None, currency: str | None) -> schemas.MoneyOut | None:
    if amount is None or currency is None:
        return None
    return schemas.MoneyOut(amount=format_money(amount), currency=currency)


def _customer_hold(c: Customer, now: datetime | None) -> holds.Hold | None:
    """The customer's hold in force at `now` (without `now`: as recorded, ended or not)."""
    if now is None:
        return holds.Hold.of(c.hold) if c.hold else None
    return c.hold_in_force(now)


def customer(c: Customer, *, show_pii: bool, now: datetime | None = None) -> schemas.CustomerPublic:
    contacts, persons, notes = c.contacts, c.contact_persons, c.notes
    text = _same
    if not show_pii:
        redactor = Redactor()
        contacts, persons = redactor.contacts(c.contacts), redactor.persons(c.contact_persons)
        notes = [{**n, "text": redactor.text(n["text"])} for n in c.notes]
        text = redactor.text
    return schemas.CustomerPublic(
        customer_id=c.customer_id,
        name=c.name,
        timezone=c.timezone,
        tier=c.tier,
        preferred_channel=c.preferred_channel,
        language=c.language,
        contacts=contacts,
        contact_persons=persons,
        contacts_masked=not show_pii,
        credit_limit=money_out(c.credit_limit, c.credit_currency),
        credit_rating=c.credit_rating,
        ability_to_pay=text(c.latest_note("ability_to_pay")),
        willingness_to_pay=text(c.latest_note("willingness_to_pay")),
        notes=[schemas.NoteOut(**n) for n in notes],
        revisits=[
            schemas.RevisitOut(**{**v, "feedback": text(v["feedback"]), "needs": text(v["needs"])}) for v in c.revisits
        ],
        version=c.version,
        hold=hold_out(hold, text) if (hold := _customer_hold(c, now)) else None,
        segment=c.segment,
        strategy_override=c.strategy_override,
        preferred_contact_hours=c.preferred_contact_hours,
    )


def simulation(result: Any) -> PolicySimulationOut:
    """A policy simulation (application.service.Simulation) as the API shows it."""

    def plan(p: Any) -> PolicyPlanOut:
        return PolicyPlanOut(
            policy_version=p.version, strategy=p.strategy, steps=[PlannedStepOut(**s.as_dict()) for s in p.steps]
        )

    return PolicySimulationOut(
        customer_id=result.customer_id,
        since=result.since,
        until=result.until,
        receivables=[
            ReceivablePlanOut(
                id=str(rp.receivable.id),
                invoice_number=rp.receivable.invoice_number,
                state=rp.receivable.state,
                balance=format_money(rp.receivable.balance),
                currency=rp.receivable.currency,
                due_on=rp.receivable.due_on.isoformat(),
                current=plan(rp.current),
                candidate=plan(rp.candidate),
                changed=[s.as_dict() for s in rp.current.steps] != [s.as_dict() for s in rp.candidate.steps],
            )
            for rp in result.receivables
        ],
    )
