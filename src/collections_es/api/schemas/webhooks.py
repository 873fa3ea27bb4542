"""Webhook subscriptions and their delivery log (ADR 0045)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from ...application.fields import Strict

EventType = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WebhookCreate(Strict):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="http:// or https://; its host must resolve to public addresses (unless the service allows private ones)",
        examples=["https://erp.example.com/hooks/collections"],
    )
    events: list[EventType] = Field(
        min_length=1, max_length=100,
        description="Event type names (`Receivable.PaymentRecorded`, `Customer.CreditHoldChanged`, …) or `*` for all",
        examples=[["Receivable.PaymentRecorded", "Customer.CreditHoldChanged"]],
    )
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="`whsec_` + base64 of the signing key: shown in this answer only")


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class WebhookEventTypes(BaseModel):
    items: list[str]


class DeliveryOut(BaseModel):
    id: str = Field(description="Sent as the `webhook-id` header; the same on every try")
    event_type: str
    receivable_id: str | None
    customer_id: str | None
    position: int
    status: str = Field(description="pending, sending, delivered, failed or cancelled")
    attempts: int
    last_status: int | None = Field(description="The HTTP status of the last try (none when it got no answer)")
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
