"""The reports: aging, the worklist, KPIs."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class AgingBucketOut(BaseModel):
    bucket: str
    count: int
    balance: str
    charges: str = Field(description="Interest and fees outstanding, kept apart from `balance` (the principal)")


class AgingGroupOut(BaseModel):
    key: str | None = Field(description="The customer, collector or currency; null for receivables with no collector")
    currency: str
    count: int
    balance: str
    charges: str = Field(description="Interest and fees outstanding, kept apart from `balance` (the principal)")
    buckets: list[AgingBucketOut]


class AgingTotalOut(BaseModel):
    currency: str
    count: int
    balance: str
    charges: str = Field(description="Interest and fees outstanding, kept apart from `balance` (the principal)")
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
    on_hold: bool = Field(default=False, description="Collection is on hold: nothing time-driven acts, nothing is sent")
    held_until: datetime | None = Field(default=None, description="When the hold ends by itself; null: until released")
    latest_reason: str | None = Field(
        default=None, description="The latest reason for non-payment recorded on it: a code of the policy's vocabulary"
    )


class RevisitDueOut(BaseModel):
    """A revisit owed after a settlement, not yet made (docs/aftercare.md)."""

    customer_id: str
    receivable_id: str = Field(description="The settled receivable that owes it")
    invoice_number: str
    collector: str | None
    settled_at: datetime
    owed_on: date = Field(description="The customer's day from which it is owed")
    last_day: date = Field(description="Made by the end of this day, or it is a finding (`revisit.not_made_in_time`)")


class WorklistOut(BaseModel):
    collector: str | None
    as_of: datetime
    items: list[WorklistItemOut]
    revisits: list[RevisitDueOut] = Field(default_factory=list, description="Revisits owed today and not yet made")


class KpiBlockOut(BaseModel):
    """One currency's KPIs over the period (docs/kpis.md: formulas, sources, worked examples)."""

    currency: str
    receivables_at_start: str = Field(description="Open balances at the end of the day before `from`")
    receivables_at_end: str = Field(description="Open balances at the end of `to`")
    current_at_end: str = Field(description="The part of `receivables_at_end` not yet past due")
    credit_sales: str = Field(description="Amounts of receivables issued (`issued_on`) in the period")
    collected: str = Field(
        description="Payments with `paid_on` in the period: the principal they settled (charges are in `charges_collected`)"
    )
    recovered: str = Field(description="Recoveries after write-off with `paid_on` in the period")
    written_off: str = Field(description="Write-offs approved in the period (their principal)")
    charges_accrued: str = Field(description="Interest and late fees accrued through days in the period (docs/charges.md)")
    charges_collected: str = Field(description="The parts of payments in the period that settled interest and fees")
    charges_waived: str = Field(description="Interest and fees waived in the period")
    charges_written_off: str = Field(description="Interest and fees outstanding on receivables written off in the period")
    dso: str | None = Field(
        description="Days sales outstanding: receivables at end ÷ credit sales × days in the period; null without credit sales"
    )
    best_possible_dso: str | None = Field(
        description="Best possible DSO: current receivables at end ÷ credit sales × days in the period "
        "(the DSO if every customer paid on its due day); null without credit sales"
    )
    average_days_delinquent: str | None = Field(
        description="Average days delinquent: `dso` − `best_possible_dso`, of the figures shown; null without credit sales"
    )
    countback_dso: str | None = Field(
        description="Countback DSO: receivables at end counted back against credit sales month by month, the latest first "
        "(calendar months, the latest cut at `to`): the days of sales they amount to; 0.0 with nothing open; "
        "null when they exceed all the credit sales on record up to `to`"
    )
    cei: str | None = Field(
        description="Collection effectiveness index, percent: (receivables at start + credit sales − receivables at end) "
        "÷ (receivables at start + credit sales − current at end) × 100; null when the denominator is zero"
    )
    promises_made: int = Field(description="Promises to pay and instalment plans made in the period")
    promises_kept: int = Field(description="Promises kept in the period")
    promises_broken: int = Field(description="Promises broken in the period")
    promise_kept_rate: str | None = Field(description="Kept ÷ (kept + broken); null with none decided")
    settled: int = Field(description="Receivables settled in the period (the day of the last payment)")
    average_days_to_collect: str | None = Field(description="Mean days from issue to settlement; null with none settled")
    average_days_late: str | None = Field(description="Mean days settled after the due day (0 if on time); null with none settled")


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
