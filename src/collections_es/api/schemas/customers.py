"""The customer file, its credit record and contacts log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from ...application.fields import AwareInstant, Currency, Identifier, Money, Strict, Text
from ...domain.policy import Channel
from .receivables import HoldOut


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


Segment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$"), Field(examples=["smb"])]
StrategyId = Annotated[str, StringConstraints(min_length=1, max_length=64), Field(examples=["strict"])]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), Field(examples=["09:30"])]


class ContactHoursIn(Strict):
    """A range of the day, in the customer's time zone, in which it prefers to be contacted."""

    start: ClockTime
    end: ClockTime


_SEGMENT = "The customer's segment, which the policy's strategies match on"
_STRATEGY = "A strategy of the policy in force this customer follows whatever the strategies match"
_HOURS = "Every day's preferred contact hours: they narrow the policy's contact windows (ADR 0050)"


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
    segment: Segment | None = Field(default=None, description=_SEGMENT)
    strategy_override: StrategyId | None = Field(default=None, description=_STRATEGY)
    preferred_contact_hours: list[ContactHoursIn] | None = Field(default=None, max_length=6, description=_HOURS)


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
    segment: Segment | None = Field(default=None, description=_SEGMENT + " (null removes it)")
    strategy_override: StrategyId | None = Field(default=None, description=_STRATEGY + " (null removes it)")
    preferred_contact_hours: list[ContactHoursIn] | None = Field(default=None, max_length=6, description=_HOURS + " (null removes them)")


class NoteOut(BaseModel):
    topic: str
    text: str
    by: str
    at: datetime


class RevisitCreate(Strict):
    """A revisit after collection that took place: recorded on the customer (a fact)."""

    occurred_at: AwareInstant | None = Field(default=None, description="When it took place (default now); not in the future")
    channel: Channel
    feedback: Text = Field(description="What the customer said about the collection and the company")
    satisfaction: int = Field(ge=1, le=5, description="The customer's satisfaction, 1 (poor) to 5 (very good)")
    needs: Text | None = Field(default=None, description="Needs the customer voiced (new orders, terms, contacts)")


class RevisitOut(BaseModel):
    """A revisit after collection, as the customer's file keeps it (the latest 20)."""

    at: datetime = Field(description="When it took place")
    by: str
    channel: str
    satisfaction: int = Field(ge=1, le=5)
    feedback: str
    needs: str | None


class MoneyOut(BaseModel):
    amount: str
    currency: str


class CustomerHoldIn(Strict):
    """Put collection with the customer on hold (each of its open receivables with it)."""

    reason: Text
    until: AwareInstant | None = Field(
        default=None, description="When the hold ends by itself (after now); without it, until released"
    )


class CustomerReleaseHoldIn(Strict):
    """Release the customer's hold: collection with it resumes from now, catching up."""

    reason: Text


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
    revisits: list[RevisitOut] = Field(default_factory=list, description="Revisits after collection, latest last")
    version: int
    segment: str | None = None
    strategy_override: str | None = None
    preferred_contact_hours: list[dict[str, str]] | None = None
    hold: HoldOut | None = Field(default=None, description="The hold on collection with the customer, if in force")


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
