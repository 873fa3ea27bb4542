"""The collection policy model: every number of the procedure, validated.

Loading it from a file is an adapter's job; this module only says what a valid
policy is. Every event records the `version` of the policy in force.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

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
    portal: PortalPolicy = Field(default_factory=PortalPolicy)

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
