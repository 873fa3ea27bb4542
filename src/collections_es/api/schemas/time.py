"""The clock, the scheduler's tick and the policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ...application.fields import AwareInstant, Strict


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
