"""Problem details (RFC 9457) as the OpenAPI document describes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
