"""Receivables: issue, read (now, as of an instant, at a version), list, history,
and one POST route per lifecycle command of the state machine."""


import json
import uuid
from datetime import date, datetime, timedelta
from functools import lru_cache
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from projections.receivables import list_receivables

from ...application.commands import LIFECYCLE, Command
from ...application.service import Override
from ...application.fields import INSTANT_RANGE, in_instant_range
from ...bootstrap import Services
from ...domain import lifecycle
from ...domain.errors import CommandNotAllowedError, NotFoundError
from ...domain.money import format_money, minor_units
from ...domain.policy import Channel
from ...domain.trail import Actor
from .. import present
from ..deps import ServicesDep, command_request, read_current, require_command, require_view
from ..schemas import (
    COMMAND_RESPONSES,
    CommandBody,
    ContactCheckOut,
    DayOrInstant,
    HistoryEntry,
    IF_MATCH,
    Instant,
    ReceivableCreate,
    ReceivablePage,
    ReceivablePublic,
    ReceivableSummary,
)
from ..errors import is_json_media_type, problem_response
from .reports import after_report_day, check_report_day, invalid_query

router = APIRouter(prefix="/receivables", tags=["receivables"])

ReceivableRef = Annotated[
    str, Path(max_length=128, description="The receivable's id, or its invoice number", examples=["INV-2026-0001"])
]


resolve_id = present.resolve_id


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
    as_of: Annotated[
        DayOrInstant | None,
        Query(
            description="An instant (with its zone), or a day (YYYY-MM-DD): the end of that day in the company's "
            "time zone (COLLECTIONS_TIMEZONE), as the aging report reads it"
        ),
    ] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> ReceivablePublic:
    """The receivable now, `as_of` an instant or the end of a day, or at a `version`."""
    rid = resolve_id(receivable_ref)
    if version is not None and version > 2**31 - 1:
        raise NotFoundError(f"receivable {rid} has no version {version}")
    if as_of is not None and version is not None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "as_of"), "msg": "give as_of or version, not both", "input": None}]
        )
    if as_of is not None:
        as_of = as_of_instant(services, as_of)
        r = services.app.get_receivable_as_of(rid, as_of)
        redactor = present.redactor_unless_pii(actor.role, services.app, r.customer_id)
        return present.receivable(r, as_of, services.app.policy(), as_of=as_of, redactor=redactor)
    r = services.app.get_receivable(rid, version=version)
    _etag(response, r.version)
    redactor = present.redactor_unless_pii(actor.role, services.app, r.customer_id)
    return present.receivable(r, services.clock.now(), services.app.policy(), redactor=redactor)


def as_of_instant(services: Services, as_of: date | datetime) -> datetime:
    """The instant an `as_of` names: itself, or a day's last instant in the company's time zone."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise invalid_query("as_of", "an instant needs a time zone (Z)", as_of.isoformat())
        if not in_instant_range(as_of):
            raise invalid_query("as_of", f"must be {INSTANT_RANGE}", as_of.isoformat())
        return as_of
    check_report_day("as_of", as_of)
    return after_report_day(services, as_of) - timedelta(microseconds=1)


@router.get("/{receivable_ref}/history", response_model=list[HistoryEntry])
def history(receivable_ref: ReceivableRef, services: ServicesDep, actor: Annotated[Actor, require_view("receivables.read")]) -> list[HistoryEntry]:
    """Every event of the receivable, oldest first, with its hash-chain links."""
    rid = resolve_id(receivable_ref)
    redactor = present.redactor_unless_pii(actor.role, services.app, services.app.get_receivable(rid).customer_id)
    return [present.history_entry(e, redactor) for e in services.app.history(rid)]


@router.get("/{receivable_ref}/contact-check", response_model=ContactCheckOut, responses={409: problem_response(409)})
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


async def raw_body(request: Request) -> bytes:
    """The request's bytes, unparsed: a command's body is read after its state is checked."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def parse_body(raw: bytes, content_type: str | None, body_type: type[CommandBody], *, optional: bool) -> CommandBody:
    """A command's body as FastAPI would read it, with the same errors (the handlers in
    api/errors.py turn them into 400, 415 or 422 problem details)."""
    if not raw:
        if optional:
            return body_type()
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if not is_json_media_type(content_type):
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",), "msg": "must be application/json", "input": None}]
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}, "ctx": {"error": exc.msg}}],
            body=exc.doc,
        ) from None
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="replace")
        position = len(raw[: exc.start].decode("utf-8", errors="replace"))
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error", "input": {}, "ctx": {"error": "not UTF-8 text"}}],
            body=text,
        ) from None
    except RecursionError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}, "ctx": {"error": "nested too deeply"}}]
        ) from None
    if data is None:
        if optional:
            return body_type()
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return body_type.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def refuse_unless_allowed(services: Services, rid: uuid.UUID, command: str) -> None:
    """404 for an unknown receivable; 409 when its state does not allow `command`."""
    state = services.app.get_receivable(rid).state
    allowed = lifecycle.allowed_commands(state)
    if command not in allowed:
        raise CommandNotAllowedError(command, state, allowed)


def _request_body_doc(body_type: type[CommandBody], optional: bool) -> dict[str, Any]:
    """The body as the OpenAPI document describes it (as FastAPI would for a `Body()` parameter;
    `document_command_bodies` adds the schemas to the components)."""
    ref = {"$ref": f"#/components/schemas/{body_type.__name__}"}
    if optional:
        return {"content": {"application/json": {"schema": {"anyOf": [ref, {"type": "null"}], "title": "Body"}}}}
    return {"content": {"application/json": {"schema": ref}}, "required": True}


def _command_route(declared: Command) -> None:
    """The POST route of one declared command: its path, body, roles and summary from the declaration."""
    command, body_type = declared.name, declared.body
    # A command with no required field may be sent without a body; others must have one.
    body_optional = not any(f.is_required() for f in body_type.model_fields.values())

    def run(
        receivable_ref: ReceivableRef,
        http: Request,
        response: Response,
        services: ServicesDep,
        actor: Annotated[Actor, require_command(command)],
        raw: RawBody,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
        if_match: Annotated[str | None, Header(max_length=32, pattern=IF_MATCH)] = None,
    ) -> ReceivablePublic:
        # The state comes before the body (401 and 403 came before both): a command the state
        # does not allow is 409 whatever its body. A valid body meets the same check in the
        # service, after an idempotent retry has been answered; an invalid one meets it here.
        rid = resolve_id(receivable_ref)
        try:
            body = parse_body(raw, http.headers.get("content-type"), body_type, optional=body_optional)
        except RequestValidationError:
            refuse_unless_allowed(services, rid, command)
            raise
        override = Override(body.override.rule_id, body.override.reason) if body.override else None
        request = command_request(
            http, actor, body.model_dump(mode="json"), idempotency_key=idempotency_key, if_match=if_match, override=override
        )
        fields = body.model_dump(exclude={"override"})
        outcome = services.app.execute(request, rid, command, **fields)
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
        openapi_extra={"requestBody": _request_body_doc(body_type, body_optional)},
    )


def document_command_bodies(app: FastAPI) -> None:
    """Put the command bodies' schemas among the OpenAPI document's components: the command
    routes read their bodies themselves (after the state check), so FastAPI does not see them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in _command_body_schemas().items():
            components.setdefault(name, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


@lru_cache(maxsize=1)
def _command_body_schemas() -> dict[str, Any]:
    """The bodies' schemas exactly as FastAPI writes a `Body()` parameter's: from a document of
    routes that take them (never served)."""
    bodies = FastAPI()
    for body_type in dict.fromkeys(c.body for c in LIFECYCLE.values()):

        def accept(body: Annotated[body_type, Body()]) -> None:  # type: ignore[valid-type]
            return None

        bodies.add_api_route(f"/{body_type.__name__}", accept, methods=["POST"])
    schemas = bodies.openapi()["components"]["schemas"]
    return {name: schema for name, schema in schemas.items() if name not in ("HTTPValidationError", "ValidationError")}


for _declared in LIFECYCLE.values():
    _command_route(_declared)
