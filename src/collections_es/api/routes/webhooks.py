"""Webhooks: subscriptions managed by supervisors, their delivery log, a replay by hand (ADR 0045)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from ...domain.trail import Actor
from ..deps import ServicesDep, require_view
from ..errors import problem_response
from ..schemas.webhooks import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookEventTypes,
    WebhookList,
    WebhookPublic,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(max_length=36, description="The subscription's id")]
DeliveryId = Annotated[str, Path(max_length=36, description="The delivery's id (its `webhook-id`)")]
Manage = Annotated[Actor, require_view("webhooks.manage")]


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "events": list(row.get("event_list", row["events"])),
            "description": row["description"], "created_at": _aware(row["created_at"])}


def _delivery(row: dict[str, Any]) -> DeliveryOut:
    return DeliveryOut(
        **{k: row[k] for k in ("id", "event_type", "receivable_id", "customer_id", "position", "status", "attempts",
                               "last_status", "last_error")},
        **{k: _aware(row[k]) for k in ("next_attempt_at", "last_attempt_at", "delivered_at", "created_at")},
    )


@router.post("", status_code=201, response_model=WebhookCreated, responses={422: problem_response(422)})
def subscribe(body: WebhookCreate, services: ServicesDep, actor: Manage) -> WebhookCreated:
    """Subscribe a URL to event types; the signing secret is in this answer only."""
    row = services.webhooks.subscribe(body.url, body.events, body.description, actor.id)
    return WebhookCreated(**_public(row), secret=row["secret"])


@router.get("", response_model=WebhookList)
def list_all(services: ServicesDep, actor: Manage) -> WebhookList:
    """The subscriptions, oldest first (never their secrets)."""
    return WebhookList(items=[WebhookPublic(**_public(row)) for row in services.webhooks.subscriptions()])


@router.get("/event-types", response_model=WebhookEventTypes)
def event_types(services: ServicesDep, actor: Manage) -> WebhookEventTypes:
    """The event type names a subscription may ask for (besides `*`)."""
    return WebhookEventTypes(items=list(services.webhooks.event_types))


@router.delete("/{webhook_id}", status_code=204, responses={404: problem_response(404)})
def delete(webhook_id: WebhookId, services: ServicesDep, actor: Manage) -> Response:
    """Delete a subscription: nothing more is delivered to it, pending deliveries are cancelled."""
    services.webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, responses={404: problem_response(404)})
def deliveries(
    webhook_id: WebhookId,
    services: ServicesDep,
    actor: Manage,
    status: Literal["pending", "sending", "delivered", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=80, pattern=r"^[0-9]{1,18}:[01]:[0-9a-f-]{36}$")] = None,
) -> DeliveryPage:
    """The subscription's delivery log in log order: event, tries, status, last HTTP status and error."""
    after = None
    if cursor is not None:
        position, seq, last = cursor.split(":", 2)
        after = (int(position), int(seq), last)
    rows = services.webhooks.deliveries(webhook_id, status=status, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = f"{page[-1]['position']}:{page[-1]['seq']}:{page[-1]['id']}" if more and page else None
    return DeliveryPage(items=[_delivery(r) for r in page], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses={404: problem_response(404), 422: problem_response(422)},
)
def replay(webhook_id: WebhookId, delivery_id: DeliveryId, services: ServicesDep, actor: Manage) -> DeliveryOut:
    """Send a delivery again now (same `webhook-id`), whatever became of it; it waits while an
    earlier delivery of its receivable is still open."""
    row = services.webhooks.replay(webhook_id, delivery_id)
    return _delivery(row)
