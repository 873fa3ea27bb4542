"""Every failure as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from eventsourcing.persistence import MapperDeserialisationError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return problem(400, "the body is not valid JSON", type_="/problems/malformed", errors=errors)
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return problem(
            422,
            f"{first['field']}: {first['message']}",
            type_="/problems/validation",
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(RuleViolationError)
    async def _rule(request: Request, exc: RuleViolationError) -> JSONResponse:
        return problem(422, exc.detail, type_="/problems/rule-violation", rule_id=exc.rule_id, field=exc.field)

    @app.exception_handler(CommandNotAllowedError)
    async def _not_allowed(request: Request, exc: CommandNotAllowedError) -> JSONResponse:
        return problem(
            409,
            str(exc),
            type_="/problems/command-not-allowed",
            command=exc.command,
            state=exc.state,
            allowed_commands=exc.allowed,
        )

    @app.exception_handler(DuplicateError)
    async def _duplicate(request: Request, exc: DuplicateError) -> JSONResponse:
        return problem(409, str(exc), type_="/problems/duplicate")

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return problem(404, str(exc), type_="/problems/not-found")

    @app.exception_handler(VersionMismatchError)
    async def _version(request: Request, exc: VersionMismatchError) -> JSONResponse:
        return problem(
            412,
            str(exc),
            type_="/problems/version-mismatch",
            expected_version=exc.expected,
            current_version=exc.actual,
        )

    @app.exception_handler(PermissionDeniedError)
    async def _forbidden(request: Request, exc: PermissionDeniedError) -> JSONResponse:
        return problem(403, str(exc), type_="/problems/forbidden")

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _key_reused(request: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
        return problem(422, str(exc), type_="/problems/idempotency-key-reused", rule_id="idempotency.key_reused")

    @app.exception_handler(ConcurrencyExhaustedError)
    async def _busy(request: Request, exc: ConcurrencyExhaustedError) -> JSONResponse:
        return problem(503, str(exc), type_="/problems/busy", headers={"Retry-After": "1"})

    @app.exception_handler(ClockError)
    async def _clock(request: Request, exc: ClockError) -> JSONResponse:
        return problem(422, str(exc), type_="/problems/clock", rule_id="clock.forward_only", field="to")

    @app.exception_handler(PolicyFileError)
    async def _policy(request: Request, exc: PolicyFileError) -> JSONResponse:
        return problem(422, str(exc), type_="/problems/policy", rule_id="policy.invalid")

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
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error occurred; it has been logged")
