"""Notifications: the outbox of messages to customers and how their sending went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from projections.outbox import list_messages

from ...application.access import PII_ROLES
from ...domain.trail import Actor
from .. import present
from ..deps import ServicesDep, read_current, require_view
from ..schemas import NotificationOut, NotificationPage

router = APIRouter(prefix="/notifications", tags=["notifications"])


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC)


@router.get("", response_model=NotificationPage)
def list_all(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("notifications.read")],
    response: Response,
    status: Literal["pending", "sending", "sent", "failed", "expired", "withheld"] | None = None,
    kind: Literal["pre_due_reminder", "first_dunning", "broken_promise", "installment_reminder"] | None = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    receivable_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> NotificationPage:
    """Messages derived from the policy's steps, oldest first; recipients masked for roles without need."""
    read_current(services, response, "outbox")
    with services.engine.execution_options(read_only=True).connect() as conn:
        rows = list_messages(
            conn, status=status, kind=kind, customer_id=customer_id, receivable_id=receivable_id,
            after=cursor, limit=limit + 1,
        )
    page, more = rows[:limit], len(rows) > limit
    show = actor.role in PII_ROLES
    items = [
        NotificationOut(
            id=r["id"],
            kind=r["kind"],
            channel=r["channel"],
            recipient=r["recipient"] if show or r["recipient"] is None else present.mask(
                "phone" if r["channel"] == "sms" else "email", r["recipient"]
            ),
            language=r["language"],
            subject=r["subject"],
            receivable_id=r["receivable_id"],
            customer_id=r["customer_id"],
            status=r["status"],
            attempts=r["attempts"],
            next_attempt_at=_aware(r["next_attempt_at"]),
            last_error=r["last_error"],
            created_at=_aware(r["created_at"]),
            sent_at=_aware(r["sent_at"]),
        )
        for r in page
    ]
    return NotificationPage(items=items, next_cursor=str(page[-1]["position"]) if more and page else None)
