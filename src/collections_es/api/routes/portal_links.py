"""Portal links: a signed, expiring link to one customer's own page (docs/portal.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import Field, StrictBool, StrictInt

from ...application.fields import Strict
from ...domain.errors import RuleViolationError
from ...domain.trail import Actor
from ..deps import ServicesDep, require_view

router = APIRouter(prefix="/customers", tags=["portal"])

CustomerId = Annotated[str, Path(max_length=128, description="The customer's id", examples=["C-SH-1"])]


class PortalLinkCreate(Strict):
    valid_days: StrictInt | None = Field(
        default=None, ge=1, le=365, description="Days the link lives (default and most: the policy's portal section)"
    )
    revoke_previous: StrictBool = Field(default=False, description="Revoke every link issued to this customer before")


class PortalLinkPublic(Strict):
    customer_id: str
    url: str = Field(description="The customer's page: send it to them; whoever holds it sees their receivables")
    expires_at: datetime
    revoked_previous: bool


class PortalLinksRevoked(Strict):
    customer_id: str
    revoked_at: datetime


def portal_url(request: Request, services: ServicesDep, path: str) -> str:
    base = services.settings.public_url or str(request.base_url)
    return base.rstrip("/") + path


@router.post("/{customer_id}/portal-link", status_code=201, response_model=PortalLinkPublic)
def issue_portal_link(
    customer_id: CustomerId,
    body: PortalLinkCreate,
    request: Request,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("portal.links")],
) -> PortalLinkPublic:
    """A signed link to the customer's own page, expiring after `valid_days`; it may revoke the earlier ones."""
    services.app.get_customer(customer_id)  # 404 for an unknown customer
    limits = services.app.policy().portal
    days = body.valid_days or limits.link_valid_days
    if days > limits.link_max_valid_days:
        raise RuleViolationError(
            "portal.link_too_long", f"a portal link lives at most {limits.link_max_valid_days} days", field="valid_days"
        )
    assert services.portal is not None
    now = services.clock.now()
    if body.revoke_previous:
        services.portal.revoke(customer_id, now, actor.id)
    link = services.portal.issue(customer_id, now, days)
    return PortalLinkPublic(
        customer_id=customer_id,
        url=portal_url(request, services, link.path),
        expires_at=link.expires_at,
        revoked_previous=body.revoke_previous,
    )


@router.delete("/{customer_id}/portal-links", response_model=PortalLinksRevoked)
def revoke_portal_links(
    customer_id: CustomerId, services: ServicesDep, actor: Annotated[Actor, require_view("portal.links")]
) -> PortalLinksRevoked:
    """Revoke every portal link issued to the customer so far (the page answers 404 to them)."""
    services.app.get_customer(customer_id)
    assert services.portal is not None
    now = services.clock.now()
    services.portal.revoke(customer_id, now, actor.id)
    return PortalLinksRevoked(customer_id=customer_id, revoked_at=now)
