"""Customers: the customer file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from ...application.access import PII_ROLES, check_view
from .. import present
from ..deps import CurrentActor, ServicesDep, command_request
from ..schemas import CustomerCreate, CustomerPublic

router = APIRouter(prefix="/customers", tags=["customers"])


@router.post("", status_code=201, response_model=CustomerPublic)
def register_customer(
    body: CustomerCreate,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: CurrentActor,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CustomerPublic:
    """Register a customer (idempotent with an Idempotency-Key)."""
    check_view(actor.role, "customers.write")
    data = body.model_dump(mode="json")
    request = command_request(http, actor, data, idempotency_key=idempotency_key)
    fields = body.model_dump()
    outcome = services.app.register_customer(request, **fields)
    response.status_code = outcome.status
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES)


@router.get("/{customer_id}", response_model=CustomerPublic)
def get_customer(customer_id: str, services: ServicesDep, actor: CurrentActor) -> CustomerPublic:
    """A customer's file; contact details masked for roles without need."""
    check_view(actor.role, "customers.read")
    return present.customer(services.app.get_customer(customer_id), show_pii=actor.role in PII_ROLES)
