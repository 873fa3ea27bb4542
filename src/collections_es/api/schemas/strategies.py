"""Policy simulation: a candidate policy's plan for a customer's open receivables beside today's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ...application.fields import Identifier, Strict
from ...domain.policy import CollectionPolicy
from .common import inline_json_schema


def _as_policy(schema: dict[str, Any]) -> None:
    """Documented as the policy document it is (validated strictly as `PUT /policy` validates)."""
    schema.clear()
    schema.update(inline_json_schema(CollectionPolicy))


class PolicySimulationIn(Strict):
    customer_id: Identifier
    policy: dict[str, Any] = Field(
        description="A whole policy document (as `PUT /policy` takes), not adopted", json_schema_extra=_as_policy
    )
    horizon_days: int = Field(400, ge=1, le=3660, description="How far ahead to plan, in days from now")


class PlannedStepOut(BaseModel):
    at: datetime
    kind: str = Field(description="The timer: reminder, fall_due, follow_up, escalate, promise_check, installment_reminder, ...")
    command: str
    reason: str
    state_after: str


class PolicyPlanOut(BaseModel):
    policy_version: str
    strategy: str | None = Field(description="The strategy the receivable would follow (null: the policy's own figures)")
    steps: list[PlannedStepOut]


class ReceivablePlanOut(BaseModel):
    id: str
    invoice_number: str
    state: str
    balance: str
    currency: str
    due_on: str
    current: PolicyPlanOut = Field(description="Under the policy in force")
    candidate: PolicyPlanOut = Field(description="Under the simulated policy")
    changed: bool = Field(description="Whether the two plans differ")


class PolicySimulationOut(BaseModel):
    customer_id: str
    since: datetime
    until: datetime
    receivables: list[ReceivablePlanOut]
