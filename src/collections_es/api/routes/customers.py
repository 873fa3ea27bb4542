"""Customers: the customer file, its list, its credit record and its contact log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from projections.contacts import read_contacts
from projections.credit import customers_on_hold, read_credit_record
from projections.customers import list_customers

from ...application.access import PII_ROLES
from ...domain.errors import NotFoundError
from ...domain.policy import Channel
from ...domain.trail import Actor
from .. import present
from ..deps import ServicesDep, command_request, read_current, require_view
from ..schemas import (
    IF_MATCH,
    ContactLogEntry,
    ContactLogPage,
    CreditRecordOut,
    CustomerCreate,
    CustomerHoldIn,
    CustomerPage,
    CustomerPatch,
    CustomerPublic,
    CustomerReleaseHoldIn,
    CustomerSummary,
    RevisitCreate,
)

router = APIRouter(prefix="/customers", tags=["customers"])

CustomerId = Annotated[str, Path(max_length=128, description="The customer's id", examples=["C-SH-1"])]



def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.post("", status_code=201, response_model=CustomerPublic)
def register_customer(
    body: CustomerCreate,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.write")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> CustomerPublic:
    """Register a customer (idempotent with an Idempotency-Key)."""
    data = body.model_dump(mode="json")
    request = command_request(http, actor, data, idempotency_key=idempotency_key)
    fields = body.model_dump()
    outcome = services.app.register_customer(request, **fields)
    response.status_code = outcome.status
    _etag(response, outcome.resource.version)
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES, now=services.clock.now())


@router.get("", response_model=CustomerPage)
def list_all(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.read")],
    response: Response,
    tier: Annotated[str | None, Query(max_length=32)] = None,
    preferred_channel: Channel | None = None,
    credit_rating: Annotated[str | None, Query(max_length=16)] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=200, description="Part of the name")] = None,
    credit_hold: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> CustomerPage:
    """Customers from the list read model, filtered, ordered by id, cursor-paginated."""
    read_current(services, response, "customers", *(["credit_records"] if credit_hold is not None else []))
    items: list[CustomerSummary] = []
    after = cursor
    with services.engine.execution_options(read_only=True).connect() as conn:
        # The hold depends on today, so it filters after the query, page by page.
        while len(items) <= limit:
            rows = list_customers(
                conn,
                tier=tier,
                preferred_channel=preferred_channel,
                credit_rating=credit_rating,
                name_contains=name,
                after=after,
                limit=limit + 1,
            )
            if credit_hold is not None:
                held = customers_on_hold(
                    conn,
                    {r["customer_id"]: r["timezone"] for r in rows},
                    now=services.clock.now(),
                    hold_days=services.settings.credit_hold_write_off_days,
                )
                kept = [r for r in rows if (r["customer_id"] in held) == credit_hold]
            else:
                kept = rows
            items.extend(_summary(r) for r in kept)
            if len(rows) <= limit:
                break
            after = rows[-1]["customer_id"]
    page, more = items[:limit], len(items) > limit
    return CustomerPage(items=page, next_cursor=page[-1].customer_id if more and page else None)


def _summary(row: dict[str, Any]) -> CustomerSummary:
    limit = None
    if row["credit_limit"] is not None:
        limit = present.money_out(row["credit_limit"], row["credit_currency"])
    return CustomerSummary(
        customer_id=row["customer_id"],
        name=row["name"],
        tier=row["tier"],
        preferred_channel=row["preferred_channel"],
        language=row["language"],
        timezone=row["timezone"],
        credit_limit=limit,
        credit_rating=row["credit_rating"],
        version=row["version"],
    )


@router.get("/{customer_id}", response_model=CustomerPublic)
def get_customer(customer_id: CustomerId, response: Response, services: ServicesDep, actor: Annotated[Actor, require_view("customers.read")]) -> CustomerPublic:
    """A customer's file; contact details masked for roles without need."""
    customer = services.app.get_customer(customer_id)
    _etag(response, customer.version)
    return present.customer(customer, show_pii=actor.role in PII_ROLES, now=services.clock.now())


@router.patch("/{customer_id}", response_model=CustomerPublic)
def update_customer(
    customer_id: CustomerId,
    body: CustomerPatch,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.write")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
) -> CustomerPublic:
    """Change part of the customer file; each kind of change is recorded as an event."""
    sent = body.model_dump(mode="json", exclude_unset=True)
    request = command_request(http, actor, sent, idempotency_key=idempotency_key, if_match=if_match)
    patch = body.model_dump(exclude_unset=True)
    if "contact_persons" in patch and patch["contact_persons"] is None:
        patch["contact_persons"] = []
    outcome = services.app.update_customer(request, customer_id, **patch)
    _etag(response, outcome.resource.version)
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES, now=services.clock.now())


@router.post("/{customer_id}/hold", response_model=CustomerPublic)
def hold(
    customer_id: CustomerId,
    body: CustomerHoldIn,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.hold")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
) -> CustomerPublic:
    """Put collection with the customer on hold, each open receivable with it (ADR 0052)."""
    request = command_request(http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key, if_match=if_match)
    outcome = services.app.hold_customer(request, customer_id, **body.model_dump())
    _etag(response, outcome.resource.version)
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES, now=services.clock.now())


@router.post("/{customer_id}/release-hold", response_model=CustomerPublic)
def release_hold(
    customer_id: CustomerId,
    body: CustomerReleaseHoldIn,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.hold")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
) -> CustomerPublic:
    """Release the customer's hold: collection with it resumes from now, catching up what is owed."""
    request = command_request(http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key, if_match=if_match)
    outcome = services.app.release_customer_hold(request, customer_id, **body.model_dump())
    _etag(response, outcome.resource.version)
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES, now=services.clock.now())


@router.post("/{customer_id}/record-revisit", response_model=CustomerPublic)
def record_revisit(
    customer_id: CustomerId,
    body: RevisitCreate,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("customers.revisit")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
) -> CustomerPublic:
    """Record a revisit after collection: feedback, satisfaction 1–5, needs (a fact; meets the revisits owed)."""
    request = command_request(http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key, if_match=if_match)
    outcome = services.app.record_revisit(request, customer_id, **body.model_dump())
    _etag(response, outcome.resource.version)
    return present.customer(outcome.resource, show_pii=actor.role in PII_ROLES)


@router.get("/{customer_id}/credit-record", response_model=CreditRecordOut)
def credit_record(customer_id: CustomerId, services: ServicesDep, actor: Annotated[Actor, require_view("customers.credit_record")], response: Response) -> CreditRecordOut:
    """How the customer has paid and promised; exposure against the credit limit; credit hold."""
    customer = services.app.get_customer(customer_id)
    read_current(services, response, "credit_records")
    today = services.clock.now().astimezone(_zone(customer.timezone)).date()
    with services.engine.execution_options(read_only=True).connect() as conn:
        record = read_credit_record(
            conn, customer_id, today=today, hold_days=services.settings.credit_hold_write_off_days
        )
    if record is None:  # registered, but the read model has not seen it (cannot happen after catch-up)
        raise NotFoundError(f"no credit record for customer '{customer_id}'")
    return CreditRecordOut(**record)


@router.get("/{customer_id}/contacts-log", response_model=ContactLogPage)
def contacts_log(
    customer_id: CustomerId,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("contacts.read")],
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> ContactLogPage:
    """Every contact recorded with the customer, over all their receivables, oldest first."""
    services.app.get_customer(customer_id)
    redactor = present.redactor_unless_pii(actor.role, services.app, customer_id)
    return contact_page(services, response, limit, cursor, redactor=redactor, customer_id=customer_id)


def contact_page(
    services: Any, response: Response, limit: int, cursor: int | None, *, redactor: Any = None, **where: str
) -> ContactLogPage:
    read_current(services, response, "contacts_log")
    with services.engine.execution_options(read_only=True).connect() as conn:
        rows = read_contacts(conn, after=cursor, limit=limit + 1, **where)
    page, more = rows[:limit], len(rows) > limit
    items = [
        ContactLogEntry(
            **{k: v for k, v in present.contact_entry(r, redactor).items() if k not in ("position", "occurred_at")},
            occurred_at=_aware(r["occurred_at"]),
        )
        for r in page
    ]
    return ContactLogPage(items=items, next_cursor=str(page[-1]["position"]) if more and page else None)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)

