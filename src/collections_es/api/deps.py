"""Request dependencies: the wired services, the authenticated actor, request metadata."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..application.access import check_command, check_view
from ..application.service import Idempotency, Override, Request as CommandRequest
from ..application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from ..bootstrap import Services
from ..domain.errors import PermissionDeniedError
from ..domain.trail import Actor
from .rate_limit import RateLimits

# Routes anyone may call: operations probes and the API's own description. Every other
# route declares its permission with `require_view` / `require_command` (a test checks).
PUBLIC_PATHS: frozenset[str] = frozenset(
    {"/healthz", "/readyz", "/metrics", "/audit/public-key", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <token>`")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def current_actor(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The key's actor: 401 without a valid token; 429 when the client address has sent
    too many invalid tokens, or the key has used up its rate (ADR 0031)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "credentials required: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    if wait := limits.failures.wait(address):
        raise _too_many(f"too many invalid tokens from {address}; try again in {wait} s", wait)
    holder = services.keys.identify(credentials.credentials)
    if holder is None:
        limits.failures.take(address)
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    if wait := limits.requests.take(holder.key_id):
        raise _too_many(f"rate limit of this API key reached; try again in {wait} s", wait)
    return holder.actor


def _too_many(detail: str, wait: int) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(wait)})


CurrentActor = Annotated[Actor, Depends(current_actor)]


def require_view(view: str) -> Any:
    """A dependency giving the actor once their role may use `view` (else 403). As a
    dependency it runs before the body and query are validated: 401, then 403, then 422."""

    def allowed(actor: CurrentActor) -> Actor:
        check_view(actor.role, view)
        return actor

    allowed.view = view  # type: ignore[attr-defined]  # read by the route x role test
    return Depends(allowed)


def require_command(command: str) -> Any:
    """As `require_view`, for a lifecycle command."""

    def allowed(actor: CurrentActor) -> Actor:
        check_command(actor.role, command)
        return actor

    allowed.command = command  # type: ignore[attr-defined]
    return Depends(allowed)


def read_current(services: Services, response: Response, *projections: str) -> None:
    """Read-your-writes before reading a view: its read models reach the log's head as of
    this request (ADR 0010); if they cannot in time, say how far behind the answer is."""
    lag = services.read_models(*projections)
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)


def parse_if_match(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit() or len(value) > 12:
        raise HTTPException(400, 'If-Match must be a version in quotes, e.g. "3"')
    return int(value)


def command_request(
    http: Request,
    actor: CurrentActor,
    body: dict | None,
    *,
    idempotency_key: str | None,
    if_match: str | None = None,
    override: Override | None = None,
) -> CommandRequest:
    """Everything the application needs to know about who asks and how."""
    idempotency = None
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
            raise HTTPException(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        idempotency = Idempotency(idempotency_key, request_fingerprint(http.method, http.url.path, body))
    if override is not None and actor.role != "supervisor":
        raise PermissionDeniedError("only a supervisor may override a rule")
    return CommandRequest(
        actor=actor,
        correlation_id=http.headers.get("x-correlation-id") or str(uuid.uuid4()),
        idempotency=idempotency,
        expected_version=parse_if_match(if_match),
        override=override,
    )
