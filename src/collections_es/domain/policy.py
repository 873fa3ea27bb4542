"""The collection policy model: every number of the procedure, validated.

Loading it from a file is an adapter's job; this module only says what a valid
policy is. Every event records the `version` of the policy in force.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

Channel = Literal["phone", "sms", "email", "letter", "visit", "wechat", "other"]
CHANNELS: tuple[str, ...] = ("phone", "sms", "email", "letter", "visit", "wechat", "other")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL; a policy is written into events and read models."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_nul)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Strict):
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        return self


class ContactPolicy(_Strict):
    windows: dict[Weekday, list[TimeWindow]] = Field(
        description="Contact windows per weekday, in the customer's time zone; a missing day has none."
    )
    max_attempts_per_receivable: int = Field(3, ge=1, le=100)
    attempts_period_days: int = Field(7, ge=1, le=365)
    max_attempts_per_customer: int = Field(
        5, ge=1, le=500, description="Contact attempts with one customer, across its receivables, per attempts_period_days."
    )
    max_phone_per_day: int = Field(1, ge=1, le=24, description="Phone contacts with one customer per local day.")

    @field_validator("windows")
    @classmethod
    def _some_window(cls, value: dict[str, list[TimeWindow]]) -> dict[str, list[TimeWindow]]:
        if not any(value.values()):
            raise ValueError("at least one weekday needs a contact window (no contact, reminder or business day otherwise)")
        return value


class RevisitPolicy(_Strict):
    """Revisits after a settlement (ADR 0057): owed to customers of `tiers`, `after_days` after the
    day the receivable was settled, to be made within `within_days` of that day."""

    tiers: list[Name] = Field(default_factory=list, description="Customer tiers owed a revisit; none: no revisits owed.")
    after_days: int = Field(30, ge=0, le=365, description="Days after the settlement day on which the revisit is owed.")
    within_days: int = Field(7, ge=0, le=90, description="Days after it is owed by which it must be made.")


class NonPaymentReason(_Strict):
    """One reason for non-payment of the vocabulary (ADR 0058): its code, and words that mean it."""

    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    aliases: list[Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)]] = Field(
        default_factory=list, description="Free texts recorded for it (compared without case, spaces or punctuation)."
    )


DEFAULT_NON_PAYMENT_REASONS: tuple[NonPaymentReason, ...] = (
    NonPaymentReason(code="cash_flow_difficulty", aliases=["cash flow", "资金周转困难", "资金紧张"]),
    NonPaymentReason(code="goods_dispute", aliases=["disputes quality", "quality", "对质量有异议", "货物争议"]),
    NonPaymentReason(code="invoice_not_received", aliases=["no invoice", "未收到发票"]),
    NonPaymentReason(code="forgot", aliases=["忘记了"]),
    NonPaymentReason(code="refuses", aliases=["拒绝付款"]),
    NonPaymentReason(code="unreachable", aliases=["联系不上"]),
    NonPaymentReason(code="other", aliases=["其他"]),
)


CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# An amount in a policy: a decimal string in JSON, as money is everywhere in the API.
PolicyAmount = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("1e15"), allow_inf_nan=False),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,6})?$", "maxLength": 22, "examples": ["200.00"]}),
]


class StrategyMatch(_Strict):
    """Which receivables a strategy applies to: every condition given must hold (none given: all)."""

    tiers: list[Name] | None = Field(None, description="The customer's tier is one of these")
    segments: list[Name] | None = Field(None, description="The customer's segment is one of these")
    currency: CurrencyCode | None = Field(None, description="The receivable's currency")
    min_amount: PolicyAmount | None = Field(None, description="The invoice amount is at least this (needs `currency`)")
    max_amount: PolicyAmount | None = Field(None, description="The invoice amount is below this (needs `currency`)")

    @model_validator(mode="after")
    def _amounts_in_a_currency(self) -> StrategyMatch:
        if (self.min_amount is not None or self.max_amount is not None) and self.currency is None:
            raise ValueError("an amount band needs a currency (amounts in different currencies do not compare)")
        if self.min_amount is not None and self.max_amount is not None and self.max_amount <= self.min_amount:
            raise ValueError(f"max_amount {self.max_amount} must be above min_amount {self.min_amount}")
        return self


class Strategy(BaseModel):
    """A named cadence for some customers: `id`, `match`, and any top-level policy field
    (besides `version` and `strategies`) whose value replaces the policy's for them; a
    table (such as `contact` or `channels_by_state`) is merged key by key. The overrides
    are checked by building the policy they make (domain/strategy.py)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Name
    description: Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)] | None = None
    match: StrategyMatch = Field(default_factory=StrategyMatch)

    @property
    def overrides(self) -> dict[str, Any]:
        """The policy fields this strategy sets, as written."""
        return dict(self.model_extra or {})


def _strategy_schema(schema: dict[str, Any]) -> None:
    """In the policy's document, a strategy lists every field it may set — the policy's own,
    each with the policy's schema for it, read when the document is made — and no other,
    as validation refuses others."""
    properties = schema["properties"]
    strategy = {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "description": {"anyOf": [{"type": "string", "maxLength": 500}, {"type": "null"}]},
        "match": StrategyMatch.model_json_schema(),  # plain fields: no definitions to carry
    }
    for name, field in properties.items():
        if name not in ("version", "strategies"):
            strategy[name] = {k: v for k, v in field.items() if k not in ("default", "title")}
    properties["strategies"]["items"] = {
        "type": "object",
        "description": Strategy.__doc__.replace("\n    ", " ").strip() if Strategy.__doc__ else "",
        "properties": strategy,
        "required": ["id"],
        "additionalProperties": False,
    }


ChargesPart = Literal["fees", "interest", "principal"]


#: A decimal figure of the policy: a number, or a plain decimal string such as "0.0365" (bounded,
#: and so described in the OpenAPI document).
PolicyDecimal = Annotated[
    Decimal,
    Field(max_digits=24),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,11})?$", "maxLength": 24}]}
    ),
]


class ChargesPolicy(_Strict):
    """Late fees and simple interest on the overdue principal (docs/charges.md, ADR 0053).

    Amounts are in the receivable's own currency (a strategy matching a currency may set
    other figures); the default charges nothing."""

    interest_rate_per_annum: PolicyDecimal = Field(
        Decimal(0), ge=0, le=1, description="Simple interest a year on the overdue principal, as a fraction: 0.0365 is 3.65%."
    )
    late_fee_amount: PolicyDecimal | None = Field(
        None, gt=0, le=Decimal("1000000000"), description="A late fee charged once, in the receivable's currency."
    )
    late_fee_after_days: int = Field(1, ge=1, le=3650, description="Days past due on which the late fee is charged.")
    allocation_order: list[ChargesPart] = Field(
        default_factory=lambda: ["fees", "interest", "principal"],
        description="What a payment settles first (PRC Civil Code art. 561: fees, then interest, then principal).",
    )
    waiver_second_approval_above: PolicyDecimal | None = Field(
        None, ge=0, description="A waiver above this amount needs a second supervisor's approval; none: never."
    )

    @field_validator("allocation_order")
    @classmethod
    def _every_part_once(cls, value: list[str]) -> list[str]:
        if sorted(value) != ["fees", "interest", "principal"]:
            raise ValueError("must name fees, interest and principal, each once")
        return value

    @property
    def charges_anything(self) -> bool:
        return self.interest_rate_per_annum > 0 or self.late_fee_amount is not None


class PortalPolicy(_Strict):
    """What a customer may do by themselves on their portal page (docs/portal.md)."""

    link_valid_days: int = Field(30, ge=1, le=365, description="Days a portal link lives when none are asked for.")
    link_max_valid_days: int = Field(90, ge=1, le=365, description="The longest life a collector may give a link.")
    links_in_messages: bool = Field(
        False, description="Reminders, dunning messages and letters carry the customer's portal link."
    )
    promise_max_days: int = Field(30, ge=0, le=365, description="A customer's promise is for at most this many days ahead.")
    promise_min_percent: int = Field(
        0, ge=0, le=100, description="A customer's promise covers at least this share of the balance (percent)."
    )
    plan_max_installments: int = Field(6, ge=1, le=120, description="Installments a customer may propose.")
    plan_max_days: int = Field(180, ge=1, le=3650, description="A proposed plan's last installment is at most this many days ahead.")

    @model_validator(mode="after")
    def _default_within_max(self) -> PortalPolicy:
        if self.link_valid_days > self.link_max_valid_days:
            raise ValueError(f"link_valid_days must not exceed link_max_valid_days ({self.link_max_valid_days})")
        return self


class CollectionPolicy(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=lambda schema, cls: _strategy_schema(schema))

    version: Annotated[str, AfterValidator(_no_nul)] = Field(min_length=1, max_length=64)
    reminder_lead_days: int = Field(7, ge=0, le=90)
    follow_up_after_days: int = Field(1, ge=0, le=90)
    escalate_after_days: int = Field(30, ge=1, le=3650)
    promise_grace_days: int = Field(3, ge=0, le=90)
    legal_referral_suggested_after_days: int = Field(90, ge=1, le=3650)
    limitation_period_years: int = Field(3, ge=1, le=30)
    limitation_warning_days: int = Field(90, ge=1, le=3650)
    limitation_action_days: int = Field(
        30, ge=1, le=3650, description="Days into the limitation warning lead by which some action must be recorded."
    )
    promise_follow_up_business_days: int = Field(
        1, ge=1, le=30, description="Business days after a broken promise by which the customer must be contacted."
    )
    holidays: list[date] = Field(default_factory=list)
    contact: ContactPolicy
    channels_by_state: dict[Name, list[Channel]] = Field(default_factory=dict)
    legal_referral_requires_approval: bool = False
    legal_referral_roles: list[Name] = Field(default_factory=lambda: ["legal", "supervisor"])
    write_off_approver_roles: list[Name] = Field(default_factory=lambda: ["supervisor"])
    # After collection (issue 17): revisits owed after a settlement, and the one vocabulary
    # of reasons for non-payment that contacts and disputes are counted by.
    revisits: RevisitPolicy = Field(default_factory=RevisitPolicy)
    non_payment_reasons: list[NonPaymentReason] = Field(
        default_factory=lambda: list(DEFAULT_NON_PAYMENT_REASONS), min_length=1, max_length=100
    )

    @field_validator("non_payment_reasons")
    @classmethod
    def _codes_once(cls, value: list[NonPaymentReason]) -> list[NonPaymentReason]:
        codes = [r.code for r in value]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"reason codes listed twice: {', '.join(repeated)}")
        return value

    # Issue 13 (strategies, ADR 0050): cadence figures peers offer, overridable per strategy.
    max_automatic_reminders: int = Field(
        1, ge=0, le=20, description="The scheduler sends a pre-due reminder only while fewer than this many were sent"
    )
    reminder_interval_days: int = Field(7, ge=1, le=90, description="Days between one pre-due reminder and the next")
    automatic_dunning_min_amount: dict[CurrencyCode, PolicyAmount] = Field(
        default_factory=dict,
        description="Per currency: below this balance nothing is sent, followed up or escalated automatically",
        json_schema_extra={"additionalProperties": False},
    )
    installment_reminder_lead_days: int | None = Field(
        None, ge=0, le=90, description="Remind the customer this many days before each installment (none: no reminder)"
    )
    strategies: list[Strategy] = Field(
        default_factory=list, description="Cadences for some customers; the first that matches applies (ADR 0050)"
    )
    charges: ChargesPolicy = Field(default_factory=ChargesPolicy)
    portal: PortalPolicy = Field(default_factory=PortalPolicy)

    @field_validator("escalate_after_days")
    @classmethod
    def _escalation_after_follow_up(cls, value: int, info: ValidationInfo) -> int:
        follow_up = info.data.get("follow_up_after_days")
        if follow_up is not None and value <= follow_up:
            raise ValueError(f"escalate_after_days must be greater than follow_up_after_days ({follow_up})")
        return value

    @field_validator("strategies")
    @classmethod
    def _unique_strategy_ids(cls, value: list[Strategy]) -> list[Strategy]:
        seen: set[str] = set()
        for strategy in value:
            if strategy.id in seen:
                raise ValueError(f"strategy id '{strategy.id}' is used twice")
            seen.add(strategy.id)
        return value

    @model_validator(mode="after")
    def _strategies_make_policies(self) -> CollectionPolicy:
        """Each strategy's overrides build a valid policy (checked whole, so fields added
        to the policy later are overridable and checked without naming them here)."""
        from .strategy import StrategyError, check_overrides  # the module that applies them

        for strategy in self.strategies:
            try:
                check_overrides(self, strategy)
            except StrategyError as exc:
                raise ValueError(str(exc)) from None
        return self

    def strategy(self, strategy_id: str | None) -> Strategy | None:
        """The strategy of that id in this policy, if any."""
        return next((s for s in self.strategies if s.id == strategy_id), None)

    def is_below_dunning_minimum(self, balance: Decimal, currency: str) -> bool:
        """Whether `balance` is too small for automatic dunning in its currency."""
        minimum = self.automatic_dunning_min_amount.get(currency)
        return minimum is not None and balance < minimum

    @model_validator(mode="after")
    def _business_days_remain(self) -> CollectionPolicy:
        """Holidays may not use up the business days: every year keeps some (the calendar looks a year ahead)."""
        weekdays = sum(1 for windows in self.contact.windows.values() if windows)
        if len(self.holidays) >= 52 * weekdays:
            raise ValueError(f"{len(self.holidays)} holidays could leave a year without a business day")
        return self
