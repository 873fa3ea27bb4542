"""Receivables: issue, read (now, as of an instant, at a version), list, history,
and one POST route per lifecycle command of the state machine."""


import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic_core import PydanticUndefined

from projections.receivables import list_receivables

from ...application.commands import LIFECYCLE, Command
from ...application.service import Override
from ...domain import lifecycle
from ...domain.errors import NotFoundError
from ...domain.money import format_money, minor_units
from ...domain.policy import Channel
from ...domain.receivable import receivable_id as derive_id
from ...domain.trail import Actor
from .. import present
from ..deps import ServicesDep, command_request, read_current, require_command, require_view
from ..schemas import (
    COMMAND_RESPONSES,
    ContactCheckOut,
    HistoryEntry,
    IF_MATCH,
    Instant,
    ReceivableCreate,
    ReceivablePage,
    ReceivablePublic,
    ReceivableSummary,
)
from ..errors import problem_response

router = APIRouter(prefix="/receivables", tags=["receivables"])

ReceivableRef = Annotated[
    str, Path(max_length=128, description="The receivable's id, or its invoice number", examples=["INV-2026-0001"])
]


def resolve_id(ref: str) -> uuid.UUID:
    """A receivable is named by its id, or by its invoice number (from which the id derives)."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return derive_id(ref)


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.post("", status_code=201, response_model=ReceivablePublic, responses={404: problem_response(404)})
def issue_receivable(
    body: ReceivableCreate,
    http: Request,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_command("issue")],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> ReceivablePublic:
    """Issue a receivable; its id derives from the invoice number, so issuing twice is 409."""
    request = command_request(http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key)
    outcome = services.app.issue_receivable(request, **body.model_dump())
    response.status_code = outcome.status
    _etag(response, outcome.resource.version)
    return present.receivable(outcome.resource, services.clock.now(), services.app.policy())


@router.get("", response_model=ReceivablePage)
def list_all(
    services: ServicesDep,
    response: Response,
    actor: Annotated[Actor, require_view("receivables.read")],
    state: Annotated[str | None, Query(max_length=32, json_schema_extra={"enum": list(lifecycle.STATES)})] = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    collector: Annotated[str | None, Query(max_length=128)] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> ReceivablePage:
    """Receivables from the list read model, filtered, ordered by id, cursor-paginated."""
    if state is not None and state not in lifecycle.STATES:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", "state"), "msg": f"must be one of {', '.join(lifecycle.STATES)}", "input": state}]
        )
    read_current(services, response, "receivables")
    overdue_at = services.clock.now() if overdue else None
    with services.engine.execution_options(read_only=True).connect() as conn:
        rows = list_receivables(
            conn,
            state=state,
            customer_id=customer_id,
            collector=collector,
            currency=currency,
            overdue_at=overdue_at,
            after=cursor,
            limit=limit + 1,
        )
    page, more = rows[:limit], len(rows) > limit
    items = [_summary(r) for r in page]
    return ReceivablePage(items=items, next_cursor=items[-1].id if more and items else None)


def _summary(row: dict[str, Any]) -> ReceivableSummary:
    unit = Decimal(1).scaleb(-minor_units(row["currency"]))
    return ReceivableSummary(
        id=row["id"],
        invoice_number=row["invoice_number"],
        customer_id=row["customer_id"],
        collector=row["collector"],
        state=row["state"],
        currency=row["currency"],
        amount=format_money(Decimal(row["amount"]).quantize(unit)),
        balance=format_money(Decimal(row["balance"]).quantize(unit)),
        issued_on=row["issued_on"],
        due_on=row["due_on"],
        version=row["version"],
    )


@router.get("/{receivable_ref}", response_model=ReceivablePublic)
def get_receivable(
    receivable_ref: ReceivableRef,
    response: Response,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("receivables.read")],
    as_of: Instant | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> ReceivablePublic:
    """The receivable now, `as_of` an instant, or at a `version`."""
    rid = resolve_id(receivable_ref)
    if version is not None and version > 2**31 - 1:
        raise NotFoundError(f"receivable {rid} has no version {version}")
    if as_of is not None and version is not None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "as_of"), "msg": "give as_of or version, not both", "input": None}]
        )
    if as_of is not None:
        if as_of.tzinfo is None:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("query", "as_of"), "msg": "an instant needs a time zone (Z)", "input": None}]
            )
        r = services.app.get_receivable_as_of(rid, as_of)
        redactor = present.redactor_unless_pii(actor.role, services.app, r.customer_id)
        return present.receivable(r, as_of, services.app.policy(), as_of=as_of, redactor=redactor)
    r = services.app.get_receivable(rid, version=version)
    _etag(response, r.version)
    redactor = present.redactor_unless_pii(actor.role, services.app, r.customer_id)
    return present.receivable(r, services.clock.now(), services.app.policy(), redactor=redactor)


@router.get("/{receivable_ref}/history", response_model=list[HistoryEntry])
def history(receivable_ref: ReceivableRef, services: ServicesDep, actor: Annotated[Actor, require_view("receivables.read")]) -> list[HistoryEntry]:
    """Every event of the receivable, oldest first, with its hash-chain links."""
    rid = resolve_id(receivable_ref)
    redactor = present.redactor_unless_pii(actor.role, services.app, services.app.get_receivable(rid).customer_id)
    return [present.history_entry(e, redactor) for e in services.app.history(rid)]


@router.get("/{receivable_ref}/contact-check", response_model=ContactCheckOut)
def contact_check(
    receivable_ref: ReceivableRef,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("receivables.contact_check")],
    channel: Annotated[Channel, Query(description="The channel of the contact in mind")],
    at: Annotated[Instant | None, Query(description="When (default now), with its zone")] = None,
) -> ContactCheckOut:
    """Before contacting: what a contact by `channel` at `at` would break, and the first instant it would break nothing."""
    if at is not None and at.tzinfo is None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "at"), "msg": "an instant needs a time zone (Z)", "input": None}]
        )
    return present.contact_check(services.app.contact_check(actor, resolve_id(receivable_ref), channel=channel, at=at))


def _command_route(declared: Command) -> None:
    """The POST route of one declared command: its path, body, roles and summary from the declaration."""
    command, body_type = declared.name, declared.body
    # A command with no required field may be sent without a body; others must have one.
    body_optional = not any(f.is_required() for f in body_type.model_fields.values())
    # The OpenAPI document says so too: a required body is not `anyOf: [..., null]` (FastAPI takes
    # an undefined default as "required").
    body_param = Annotated[body_type | None, Body()] if body_optional else Annotated[body_type, Body()]  # type: ignore[valid-type]

    def run(
        receivable_ref: ReceivableRef,
        http: Request,
        response: Response,
        services: ServicesDep,
        actor: Annotated[Actor, require_command(command)],
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
        if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
        body: body_param = None if body_optional else PydanticUndefined,  # type: ignore[valid-type]
    ) -> ReceivablePublic:
        body = body if body is not None else body_type()
        override = Override(body.override.rule_id, body.override.reason) if body.override else None
        request = command_request(
            http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key, if_match=if_match, override=override
        )
        fields = body.model_dump(exclude={"override"})
        outcome = services.app.execute(request, resolve_id(receivable_ref), command, **fields)
        _etag(response, outcome.resource.version)
        redactor = present.redactor_unless_pii(actor.role, services.app, outcome.resource.customer_id)
        return present.after_command(command, outcome.resource, services.clock.now(), services.app.policy(), redactor=redactor)

    run.__doc__ = f"Lifecycle command `{command}`: {declared.summary}."
    run.__name__ = command
    router.add_api_route(
        f"/{{receivable_ref}}/{declared.path}",
        run,
        methods=["POST"],
        response_model=COMMAND_RESPONSES.get(command, ReceivablePublic),
        name=command,
        summary=command.replace("_", " ").capitalize(),
    )


for _declared in LIFECYCLE.values():
    _command_route(_declared)
