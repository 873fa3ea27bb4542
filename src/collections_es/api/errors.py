"""Every failure as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from eventsourcing.persistence import MapperDeserialisationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from ..adapters.policy_file import PolicyFileError
from ..application.clock import ClockError
from ..domain.errors import (
    CommandNotAllowedError,
    ConcurrencyExhaustedError,
    DuplicateError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PermissionDeniedError,
    RuleViolationError,
    VersionMismatchError,
)
from . import present
from .schemas import ProblemDetails

log = logging.getLogger(__name__)

TITLES = {
    400: "Malformed request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(status: int, detail: str, *, type_: str = "about:blank", headers: dict[str, str] | None = None, **extensions: Any) -> JSONResponse:
    body = {"type": type_, "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


# ---- the OpenAPI document ----------------------------------------------------------

WRITE_METHODS = ("post", "put", "patch", "delete")

PROBLEM_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, a header is out of its format, or the URL holds a NUL",
    401: "No credentials, or an unknown or revoked token",
    403: "The caller's role may not do this",
    404: "No such resource",
    409: "Conflict: the command is not allowed in the current state, or the resource exists already",
    412: "If-Match names a version that is no longer current",
    413: "The body exceeds the size limit (COLLECTIONS_MAX_BODY_BYTES)",
    415: "The body is not application/json",
    422: "Validation failed (`field`, `errors`), or a procedure rule refused the request (`rule_id`)",
    429: "Too many requests for this key; retry after `Retry-After` seconds",
    503: "Busy: the write lost its races with concurrent writes; retry after `Retry-After` seconds",
}


def problem_response(status: int) -> dict[str, Any]:
    """An OpenAPI response object: problem details with the status's description."""
    return {
        "description": PROBLEM_DESCRIPTIONS.get(status, TITLES.get(status, "Error")),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


def problem_statuses(method: str, operation: dict[str, Any]) -> set[int]:
    """The problems an operation can answer with, from what it declares: every request may be
    malformed (400: a NUL in the URL), one with parameters or a body invalid (422);
    authenticated ones add 401, 403, 429; a path parameter names
    something that may not exist (404); a body may be too large (413) or not JSON (415); If-Match
    gives 412 and, as a retried write, 503 when it loses every race; a POST taking an
    Idempotency-Key creates or changes a resource and may conflict (409)."""
    statuses = {400}
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    if operation.get("security"):
        statuses |= {401, 403, 429}
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {413, 415}
    if "if-match" in headers:
        statuses |= {412, 503}
    if method == "post" and "idempotency-key" in headers:
        statuses.add(409)
    return statuses


def document_problems(app: FastAPI) -> None:
    """Every operation's error responses as ProblemDetails (application/problem+json), in place of
    FastAPI's default 422 (which describes a body this app never sends). Explicit `responses=` on
    a route are kept; this adds what the route's declaration implies (`problem_statuses`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem_schema.pop("$defs", {}))
        components["ProblemDetails"] = problem_schema
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                for status in sorted(problem_statuses(method, operation)):
                    current = responses.get(str(status))
                    if current is None or "HTTPValidationError" in json.dumps(current):
                        responses[str(status)] = problem_response(status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in request.headers


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or application/*+json, as FastAPI decides whether to parse a body as JSON."""
    if not content_type:
        return False
    maintype, _, subtype = content_type.split(";", 1)[0].strip().lower().partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def json_error_detail(exc: RequestValidationError) -> str:
    """Where a body stops being JSON, as a person finds it in an editor: line and column
    (the parser gives a character offset, which is no field)."""
    error = next(e for e in exc.errors() if e["type"] == "json_invalid")
    reason = (error.get("ctx") or {}).get("error") or error.get("msg") or "not JSON"
    loc = tuple(error.get("loc", ()))
    position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    document = exc.body if isinstance(exc.body, str) else None
    if position is None or document is None:
        return f"invalid JSON: {reason}"
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return f"invalid JSON at line {line}, column {column}: {reason}"


def _allowed_actions(request: Request, commands: list[str]) -> list[dict[str, str]] | None:
    """The routes of the commands allowed now, for the receivable the request named."""
    ref = request.path_params.get("receivable_ref")
    if ref is None:
        return None
    return [a.model_dump() for a in present.allowed_actions(present.resolve_id(ref), commands)]


@dataclass(frozen=True)
class Problem:
    """How one kind of error is answered: its status, problem type and extensions."""

    status: int
    type: str
    extensions: Callable[[Request, Any], dict[str, Any]] = lambda request, exc: {}
    detail: Callable[[Any], str] = str
    headers: dict[str, str] | None = None

    async def handler(self, request: Request, exc: Exception) -> JSONResponse:
        return problem(
            self.status, self.detail(exc), type_=self.type, headers=self.headers, **self.extensions(request, exc)
        )


#: Every application error and its problem details; `install` registers one handler per row.
PROBLEMS: dict[type[Exception], Problem] = {
    RuleViolationError: Problem(
        422, "/problems/rule-violation", lambda r, e: {"rule_id": e.rule_id, "field": e.field}, detail=lambda e: e.detail
    ),
    CommandNotAllowedError: Problem(
        409,
        "/problems/command-not-allowed",
        lambda r, e: {
            "command": e.command,
            "state": e.state,
            "allowed_commands": e.allowed,
            "allowed_actions": _allowed_actions(r, e.allowed),
        },
    ),
    DuplicateError: Problem(409, "/problems/duplicate"),
    NotFoundError: Problem(404, "/problems/not-found"),
    VersionMismatchError: Problem(
        412, "/problems/version-mismatch", lambda r, e: {"expected_version": e.expected, "current_version": e.actual}
    ),
    PermissionDeniedError: Problem(403, "/problems/forbidden"),
    IdempotencyKeyReusedError: Problem(422, "/problems/idempotency-key-reused", lambda r, e: {"rule_id": "idempotency.key_reused"}),
    ConcurrencyExhaustedError: Problem(503, "/problems/busy", headers={"Retry-After": "1"}),
    ClockError: Problem(422, "/problems/clock", lambda r, e: {"rule_id": "clock.forward_only", "field": "to"}),
    PolicyFileError: Problem(422, "/problems/policy", lambda r, e: {"rule_id": "policy.invalid"}),
}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Each method of a path is a route
    of its own, and the router names only the first one's in a 405, so they are gathered here."""
    table = getattr(request.app.state, "method_table", None)
    if table is None:
        from .route_access import endpoints

        table = request.app.state.method_table = [(compile_path(e.path)[0], e.method) for e in endpoints(request.app)]
    path = request.scope["path"]
    return sorted({method for pattern, method in table if pattern.match(path)})


def install(app: FastAPI) -> None:
    """Problem details for every failure, and each operation's problems in the OpenAPI document."""
    document_problems(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        body_refused = any(tuple(e["loc"])[:1] == ("body",) for e in exc.errors())
        if body_refused and _has_body(request) and not is_json_media_type(request.headers.get("content-type")):
            # FastAPI reads a body as JSON only when it says it is; any other body cannot be valid.
            return problem(415, "the body must be application/json", type_="/problems/unsupported-media-type")
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            detail = json_error_detail(exc)
            return problem(
                400, detail, type_="/problems/malformed", field="body", errors=[{"field": "body", "message": detail}]
            )
        if any(tuple(e["loc"])[:1] == ("header",) for e in exc.errors()):
            # A header out of its format (an over-long Idempotency-Key, say) is a malformed request,
            # as deps.command_request and deps.parse_if_match already answer for the others.
            return problem(
                400, f"{first['field']}: {first['message']}", type_="/problems/malformed", field=first["field"], errors=errors
            )
        return problem(
            422,
            f"{first['field']}: {first['message']}",
            type_="/problems/validation",
            field=first["field"],
            errors=errors,
        )

    for error_type, answer in PROBLEMS.items():
        app.add_exception_handler(error_type, answer.handler)

    @app.exception_handler(MapperDeserialisationError)
    async def _damaged(request: Request, exc: MapperDeserialisationError) -> JSONResponse:
        log.error("a stored event cannot be read on %s %s: %s", request.method, request.url.path, exc)
        return problem(
            500,
            "a stored event of this resource cannot be read; GET /audit/verify reports which and how",
            type_="/problems/damaged-event",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(exc.status_code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error occurred; it has been logged")
