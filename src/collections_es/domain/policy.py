"""The collection policy model: every number of the procedure, validated.

Loading it from a file is an adapter's job; this module only says what a valid
policy is. Every event records the `version` of the policy in force.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Annotated, Literal

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


class CollectionPolicy(_Strict):
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
    charges: ChargesPolicy = Field(default_factory=ChargesPolicy)

    @field_validator("escalate_after_days")
    @classmethod
    def _escalation_after_follow_up(cls, value: int, info: ValidationInfo) -> int:
        follow_up = info.data.get("follow_up_after_days")
        if follow_up is not None and value <= follow_up:
            raise ValueError(f"escalate_after_days must be greater than follow_up_after_days ({follow_up})")
        return value

    @model_validator(mode="after")
    def _business_days_remain(self) -> CollectionPolicy:
        """Holidays may not use up the business days: every year keeps some (the calendar looks a year ahead)."""
        weekdays = sum(1 for windows in self.contact.windows.values() if windows)
        if len(self.holidays) >= 52 * weekdays:
            raise ValueError(f"{len(self.holidays)} holidays could leave a year without a business day")
        return self
