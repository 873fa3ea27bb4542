"""A receivable as the API shows it: now, in a list, its history, after a command, its contact check."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import AllowedAction


class PromiseOut(BaseModel):
    amount: str
    promised_on: date
    paid_towards: str


class InstallmentOut(BaseModel):
    due_on: date
    amount: str


class InstallmentPlanOut(BaseModel):
    installments: list[InstallmentOut]
    paid_towards: str


class DisputeOut(BaseModel):
    reason: str
    raised_by: str
    raised_at: datetime


class OpenComplaintOut(BaseModel):
    """A complaint about the collection not yet ruled on (docs/aftercare.md)."""

    complaint: int = Field(description="Its id: the receivable's version that recorded it; `resolve-complaint` names it")
    severity: str
    channel: str
    about_version: int | None
    recorded_by: str
    recorded_at: datetime


class WriteOffRequestOut(BaseModel):
    requested_by: str
    reason: str


class BalanceBreakdownOut(BaseModel):
    """What the balance is made of (docs/charges.md): principal + interest + fees = balance."""

    principal: str
    interest: str
    fees: str


class ChargesWaiverOut(BaseModel):
    amount: str
    reason: str
    requested_by: str


class ChargesOut(BaseModel):
    """Interest and fees so far: accrued through a day, paid, waived (docs/charges.md)."""

    accrued_through: date | None = Field(description="The last day accrued; null before the first accrual")
    interest_accrued: str
    fees_accrued: str
    interest_paid: str
    fees_paid: str
    interest_waived: str
    fees_waived: str
    waiver_request: ChargesWaiverOut | None = Field(description="A waiver above the threshold, awaiting a second supervisor")


class LimitationInterruptionOut(BaseModel):
    kind: Literal["demand", "acknowledgement", "proceedings"]
    on: date
    version: int = Field(description="The receivable's version whose event proves it")


class LimitationOut(BaseModel):
    """The limitation period running now (docs/limitation.md; PRC Civil Code arts. 188, 189, 195)."""

    started_on: date
    lapses_on: date = Field(description="The period's last day; the claim is time-barred from the next day")
    last_interruption: LimitationInterruptionOut | None = Field(
        description="The demand, acknowledgement or proceedings it runs from; null while it runs from the due date"
    )


class HoldOut(BaseModel):
    """A hold on collection in force (ADR 0052): nothing time-driven acts, nothing is sent."""

    scope: Literal["receivable", "customer"] = Field(description="The receivable's own hold, or its customer's")
    reason: str
    until: datetime | None = Field(description="When it ends by itself; null: until released")
    placed_by: str
    placed_at: datetime
class InstallmentProposalOut(BaseModel):
    """The customer's last proposed plan (portal) and what became of it."""

    status: Literal["pending", "accepted", "declined"]
    installments: list[InstallmentOut]
    note: str | None
    proposed_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision: str | None = Field(default=None, description="The note of an acceptance or the reason of a refusal")


class ReceivablePublic(BaseModel):
    id: str
    invoice_number: str
    customer_id: str
    state: str
    amount: str
    currency: str
    balance: str
    balance_breakdown: BalanceBreakdownOut
    charges: ChargesOut
    paid: str
    written_off_amount: str
    recovered: str
    issued_on: date
    due_on: date
    days_past_due: int
    legal_referral_suggested: bool = Field(
        description="Long overdue by the policy's figure: a person should consider referring it to legal"
    )
    collector: str | None
    promise: PromiseOut | None
    installment_plan: InstallmentPlanOut | None
    dispute: DisputeOut | None
    write_off_request: WriteOffRequestOut | None
    timezone: str
    version: int
    allowed_commands: list[str]
    allowed_actions: list[AllowedAction] = Field(description="`allowed_commands` with the method and path of each")
    policy_version: str
    strategy: str | None = Field(
        default=None, description="The policy's strategy the receivable follows (null: the policy's own figures)"
    )
    limitation: LimitationOut
    open_complaints: list[OpenComplaintOut] = Field(default_factory=list, description="Complaints not yet ruled on")
    as_of: datetime | None = None
    holds: list[HoldOut] = Field(default_factory=list, description="The holds in force (its own, its customer's)")
    installment_proposal: InstallmentProposalOut | None = None


class BreachOut(BaseModel):
    rule_id: str
    detail: str


class ContactFindingOut(BaseModel):
    rule_id: str = Field(description="The rule broken, or `override.used` when a contact exception passed it")
    detail: str
    overridden_rule_id: str | None = Field(default=None, description="For `override.used`: the rule the exception passed")


class ContactRecordedOut(ReceivablePublic):
    """The receivable after `record-contact`, with what the contact broke."""

    findings: list[ContactFindingOut] = Field(
        description="Each rule the contact broke, a finding at once (also in GET /compliance/findings); "
        "empty when it broke none"
    )


class ContactCheckOut(BaseModel):
    allowed: bool = Field(description="A contact by this channel at `at` breaks no rule (or only what an exception passes)")
    channel: str
    at: datetime
    breaches: list[BreachOut]
    overrides: list[ContactFindingOut] = Field(description="Breaches a supervisor's contact exception would pass")
    next_allowed_at: datetime | None = Field(
        description="The first instant at or after `at` at which such a contact breaks nothing; "
        "null when the channel is not allowed in the receivable's state"
    )


class ReceivableSummary(BaseModel):
    id: str
    invoice_number: str
    customer_id: str
    collector: str | None
    state: str
    currency: str
    amount: str
    balance: str
    issued_on: date
    due_on: date
    version: int


class ReceivablePage(BaseModel):
    items: list[ReceivableSummary]
    next_cursor: str | None


class HistoryEntry(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    actor: str
    role: str
    reason: str | None
    data: dict[str, Any]
    state_after: str
    correlation_id: str
    policy_version: str
    strategy: str | None = Field(default=None, description="The strategy the event followed beside its policy version")
    scheduled_for: datetime | None
    override: dict[str, str] | None
    hash: str
    prev_hash: str


#: Commands whose response says more than the receivable (the others answer `ReceivablePublic`).
COMMAND_RESPONSES: dict[str, type[ReceivablePublic]] = {"record_contact": ContactRecordedOut}
