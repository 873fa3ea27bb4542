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


class WriteOffRequestOut(BaseModel):
    requested_by: str
    reason: str


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
    limitation: LimitationOut
    as_of: datetime | None = None
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
    scheduled_for: datetime | None
    override: dict[str, str] | None
    hash: str
    prev_hash: str


#: Commands whose response says more than the receivable (the others answer `ReceivablePublic`).
COMMAND_RESPONSES: dict[str, type[ReceivablePublic]] = {"record_contact": ContactRecordedOut}
