"""The reports: aging, the worklist, KPIs."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


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
