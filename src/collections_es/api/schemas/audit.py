"""The audit's verification report."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
