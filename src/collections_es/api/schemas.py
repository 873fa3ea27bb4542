"""Request and response schemas. Every request model forbids unknown fields and
bounds every string; money is a decimal string, never a JSON number."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Re-exported for the routes: the command bodies and field types are declared in the application.
from ..application.commands import CommandBody, OverrideIn, ReceivableCreate  # noqa: F401
from ..application.fields import (  # noqa: F401
    AwareInstant,
    Currency,
    Day,
    DayOrInstant,
    Identifier,
    Instant,
    Money,
    ShortText,
    Strict,
    Text,
)
from ..domain.policy import Channel

IF_MATCH = r'^(W/)?"?[0-9]{1,12}"?$'
"""An If-Match header: a version, quoted as the ETag gives it (deps.parse_if_match reads it)."""

# ---- errors ----------------------------------------------------------------

class FieldErrorOut(BaseModel):
    field: str = Field(description="The field at fault, dotted (`contacts.email`, `installments.0.amount`)")
    message: str


class AllowedAction(BaseModel):
    """A command the receivable's state allows now, and the request that sends it."""

    command: str = Field(examples=["send_reminder"])
    method: Literal["POST"]
    path: str = Field(examples=["/receivables/3f0c1a52-7a51-5b6e-9d43-2b1f1f7e9c10/send-reminder"])


class ProblemDetails(BaseModel):
    """An RFC 9457 problem (application/problem+json); the extensions present depend on the problem."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI reference naming the kind of problem, e.g. /problems/validation")
    title: str
    status: int
    detail: str
    field: str | None = Field(default=None, description="The field at fault (400, 422)")
    errors: list[FieldErrorOut] | None = Field(default=None, description="Every field at fault (400, 422)")
    rule_id: str | None = Field(default=None, description="The procedure rule refused (422)")
    command: str | None = Field(default=None, description="The command refused (409)")
    state: str | None = Field(default=None, description="The receivable's state (409)")
    allowed_commands: list[str] | None = Field(default=None, description="What the state allows (409)")
    allowed_actions: list[AllowedAction] | None = Field(
        default=None, description="The same commands with the method and path that send them (409)"
    )
    expected_version: int | None = Field(default=None, description="The If-Match version (412)")
    current_version: int | None = Field(default=None, description="The resource's version (412)")


# ---- customers -------------------------------------------------------------

class ContactsIn(Strict):
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")] | None = None
    address: Annotated[str, StringConstraints(max_length=500)] | None = None


class ContactPersonIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Annotated[str, StringConstraints(max_length=100)] | None = None
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")] | None = None


class MoneyIn(Strict):
    amount: Money
    currency: Currency


Language = Literal["zh-CN", "en"]
Rating = Literal["A", "B", "C", "D", "unrated"]
Tier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
CustomerName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64), Field(examples=["Asia/Shanghai"])]


class CustomerCreate(Strict):
    customer_id: Identifier
    name: CustomerName
    timezone: TimeZone
    tier: Tier = "standard"
    preferred_channel: Channel = "email"
    language: Language = "zh-CN"
    contacts: ContactsIn = Field(default_factory=ContactsIn)
    contact_persons: list[ContactPersonIn] = Field(default_factory=list, max_length=20)
    credit_limit: MoneyIn | None = None
    credit_rating: Rating | None = None
    ability_to_pay: Text | None = Field(default=None, description="Sales' note on the customer's ability to pay")
    willingness_to_pay: Text | None = Field(default=None, description="Sales' note on the customer's willingness to pay")


class CustomerPatch(Strict):
    """Only the fields sent change; `contacts` and `contact_persons` replace the whole set;
    `credit_limit: null` removes the limit; a note adds a note."""

    name: CustomerName | None = None
    timezone: TimeZone | None = None
    tier: Tier | None = None
    preferred_channel: Channel | None = None
    language: Language | None = None
    contacts: ContactsIn | None = None
    contact_persons: list[ContactPersonIn] | None = Field(default=None, max_length=20)
    credit_limit: MoneyIn | None = None
    credit_rating: Rating | None = None
    ability_to_pay: Text | None = None
    willingness_to_pay: Text | None = None


class NoteOut(BaseModel):
    topic: str
    text: str
    by: str
    at: datetime


class MoneyOut(BaseModel):
    amount: str
    currency: str


class CustomerPublic(BaseModel):
    customer_id: str
    name: str
    timezone: str
    tier: str
    preferred_channel: str
    language: str
    contacts: dict[str, str]
    contact_persons: list[dict[str, str]]
    contacts_masked: bool
    credit_limit: MoneyOut | None
    credit_rating: str | None
    ability_to_pay: str | None
    willingness_to_pay: str | None
    notes: list[NoteOut]
    version: int


class CustomerSummary(BaseModel):
    customer_id: str
    name: str
    tier: str
    preferred_channel: str
    language: str
    timezone: str
    credit_limit: MoneyOut | None
    credit_rating: str | None
    version: int


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    next_cursor: str | None


class CurrencyFigures(BaseModel):
    currency: str
    written_off: str
    recovered: str
    exposure: str = Field(description="Open balance of receivables not settled or written off")


class CreditRecordOut(BaseModel):
    customer_id: str
    settled_on_time: int
    settled_late: int
    average_days_late: str = Field(description="Mean days late over all settled receivables (on time counts 0)")
    promises_made: int
    promises_kept: int
    promises_broken: int
    by_currency: list[CurrencyFigures]
    credit_limit: MoneyOut | None
    exposure_in_limit_currency: str | None
    over_credit_limit: bool
    last_write_off_on: date | None
    recent_write_off: bool
    credit_hold: bool
    credit_hold_reasons: list[str]
    rating: str
    rating_rule: str


class ContactLogEntry(BaseModel):
    receivable_id: str
    invoice_number: str
    customer_id: str
    occurred_at: datetime
    actor: str
    role: str
    channel: str
    outcome: str
    note: str
    customer_attitude: str | None
    reason_for_non_payment: str | None
    promised_on: date | None
    next_step: str | None
    interrupts_limitation: bool


class ContactLogPage(BaseModel):
    items: list[ContactLogEntry]
    next_cursor: str | None


class NotificationOut(BaseModel):
    id: str
    kind: str
    channel: str | None
    recipient: str | None
    language: str
    subject: str
    receivable_id: str
    customer_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


# ---- receivables -----------------------------------------------------------

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


class AuditBreakOut(BaseModel):
    kind: str = Field(description="edited, deleted, reordered, undecodable or broken_link (docs/audit.md)")
    aggregate_id: str
    aggregate_type: str | None
    receivable_id: str | None = Field(description="The aggregate id when it is a receivable")
    version: int
    notification_id: int | None = Field(description="Position in the log where the break shows")
    detail: str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked_events: int = Field(description="Events of hash-chained aggregates read and checked")
    checked_aggregates: int
    skipped_events: int = Field(description="Events without a trail (idempotency records), not chained")
    up_to: int = Field(description="The log was verified up to this notification id")
    read_model_compared: bool
    first_break: AuditBreakOut | None
    break_count: int
    breaks: list[AuditBreakOut] = Field(description="The first 100 breaks in log order")


#: Commands whose response says more than the receivable (the others answer `ReceivablePublic`).
COMMAND_RESPONSES: dict[str, type[ReceivablePublic]] = {"record_contact": ContactRecordedOut}


def inline_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` substituted in place, for an `openapi_extra`
    (the OpenAPI document's components cannot hold a schema's own `$defs`)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


# ---- time --------------------------------------------------------------------

class ClockAdvance(Strict):
    to: AwareInstant = Field(description="An instant with its zone, e.g. 2026-04-01T00:00:00Z")


class ClockOut(BaseModel):
    now: datetime
    fired: list[dict[str, Any]] = Field(default_factory=list)


class PolicyVersionOut(BaseModel):
    version: str
    adopted_at: datetime
    adopted_by: str
    changes: list[dict[str, Any]]


class PolicyOut(BaseModel):
    version: str
    policy: dict[str, Any]
    history: list[PolicyVersionOut]


class TickOut(BaseModel):
    now: datetime
    fired: list[dict[str, Any]]


# ---- views: aging, worklist, KPIs --------------------------------------------------


class AgingBucketOut(BaseModel):
    bucket: str
    count: int
    balance: str


class AgingGroupOut(BaseModel):
    key: str | None = Field(description="The customer, collector or currency; null for receivables with no collector")
    currency: str
    count: int
    balance: str
    buckets: list[AgingBucketOut]


class AgingTotalOut(BaseModel):
    currency: str
    count: int
    balance: str
    buckets: list[AgingBucketOut]


class AgingReportOut(BaseModel):
    as_of: date
    group_by: str
    currency: str | None = Field(description="The currency reported on, when there is only one")
    buckets: list[AgingBucketOut] | None = Field(description="The buckets of that one currency; null when several")
    totals: list[AgingTotalOut] = Field(description="One total per currency: currencies are never added together")
    groups: list[AgingGroupOut]


class WorklistItemOut(BaseModel):
    receivable_id: str
    invoice_number: str
    customer_id: str
    tier: str | None
    collector: str | None
    state: str
    currency: str
    balance: str
    due_on: date
    days_past_due: int
    priority: float = Field(description="The documented priority score (docs/worklist.md); higher first")
    reason: str
    reasons: list[str]
    allowed_commands: list[str] = Field(description="Commands the state allows and the caller's role may send")


class WorklistOut(BaseModel):
    collector: str | None
    as_of: datetime
    items: list[WorklistItemOut]


class KpiBlockOut(BaseModel):
    currency: str
    receivables_at_start: str
    receivables_at_end: str
    current_at_end: str
    credit_sales: str
    collected: str
    recovered: str
    written_off: str
    dso: str | None = Field(description="Days sales outstanding; null without credit sales")
    cei: str | None = Field(description="Collection effectiveness index, percent")
    promises_made: int
    promises_kept: int
    promises_broken: int
    promise_kept_rate: str | None
    settled: int
    average_days_to_collect: str | None
    average_days_late: str | None


class KpiCollectorOut(KpiBlockOut):
    collector: str | None


class KpisOut(BaseModel):
    from_: date = Field(alias="from")
    to: date
    days: int
    timezone: str = Field(
        description="The company's time zone (COLLECTIONS_TIMEZONE): facts without a day of their own are dated in it"
    )
    today: date = Field(description="Today in the company's time zone: the default `to`")
    overall: list[KpiBlockOut]
    collectors: list[KpiCollectorOut]

    model_config = ConfigDict(populate_by_name=True)
