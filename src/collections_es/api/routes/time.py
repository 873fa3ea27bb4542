"""Time: the policy in force, firing timers, and the sandbox clock."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request

from ...adapters.policy_file import PolicyFileError
from ...domain.policy import CollectionPolicy
from ...domain.trail import Actor
from ..deps import ServicesDep, command_request, require_view
from ..present import simulation as present_simulation
from ..schemas.strategies import PolicySimulationIn, PolicySimulationOut
from ..schemas import ClockAdvance, ClockOut, PolicyOut, TickOut, inline_json_schema

policy_router = APIRouter(prefix="/policy", tags=["policy"])
admin_router = APIRouter(prefix="/admin", tags=["time"])
sandbox_router = APIRouter(prefix="/sandbox", tags=["time"])


def _policy_out(services: Any) -> PolicyOut:
    book = services.app.policy_book()
    history = [
        {"version": e.version, "adopted_at": e.timestamp, "adopted_by": e.actor_id, "changes": e.changes}
        for e in services.app.events.get(book.id)
        if hasattr(e, "version") and hasattr(e, "changes")
    ]
    return PolicyOut(version=book.current, policy=book.versions[book.current], history=history)


@policy_router.get("", response_model=PolicyOut)
def get_policy(services: ServicesDep, actor: Annotated[Actor, require_view("policy.read")]) -> PolicyOut:
    """The policy in force, with every version adopted before it."""
    return _policy_out(services)


# The body is read as a plain object so that a refused policy is answered as the policy file's
# errors are (rule_id policy.invalid); the document still describes what a valid one is.
POLICY_BODY = {"requestBody": {"content": {"application/json": {"schema": inline_json_schema(CollectionPolicy)}}}}


@policy_router.put("", response_model=PolicyOut, openapi_extra=POLICY_BODY)
def put_policy(
    http: Request,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("policy.write")],
    body: dict[str, Any] = Body(description="A whole policy document with a new `version`"),  # noqa: B008
) -> PolicyOut:
    """Adopt a new policy version (supervisors); recorded with who, when and what changed."""
    from pydantic import ValidationError

    try:
        # Strict, as JSON: `0` is not a boolean nor "10" a number of days (the document says which types).
        policy = CollectionPolicy.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise PolicyFileError(f"policy refused, the one in force is kept: {problems}") from None
    services.app.adopt_policy(command_request(http, actor, body, idempotency_key=None), policy)
    return _policy_out(services)


def _candidate(body: dict[str, Any]) -> CollectionPolicy:
    """A policy document sent over HTTP, validated as `PUT /policy` validates it."""
    from pydantic import ValidationError

    try:
        # Strict, as JSON: `0` is not a boolean nor "10" a number of days (the document says which types).
        return CollectionPolicy.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise PolicyFileError(f"policy refused: {problems}") from None


@policy_router.post("/simulate", response_model=PolicySimulationOut)
def simulate_policy(
    body: PolicySimulationIn,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("policy.simulate")],
) -> PolicySimulationOut:
    """The dated plan each open receivable of a customer would follow under a policy, beside today's (nothing is adopted)."""
    candidate = _candidate(body.policy)
    result = services.app.simulate_policy(actor, candidate, body.customer_id, horizon_days=body.horizon_days)
    return present_simulation(result)


@admin_router.post("/tick", response_model=TickOut)
def tick(services: ServicesDep, actor: Annotated[Actor, require_view("admin.tick")]) -> TickOut:
    """Fire every timer due now."""
    fired = services.scheduler.tick()
    return TickOut(now=services.clock.now(), fired=[f.as_dict() for f in fired])


@sandbox_router.get("/clock", response_model=ClockOut)
def get_clock(services: ServicesDep, actor: Annotated[Actor, require_view("sandbox.clock")]) -> ClockOut:
    """The sandbox clock's time."""
    if services.sandbox is None:
        raise HTTPException(404, "not in sandbox mode")
    return ClockOut(now=services.sandbox.now())


@sandbox_router.post("/clock/advance", response_model=ClockOut)
def advance_clock(body: ClockAdvance, services: ServicesDep, actor: Annotated[Actor, require_view("sandbox.clock")]) -> ClockOut:
    """Move the sandbox clock forward (never back), firing every timer due on the way at its own instant."""
    if services.sandbox is None:
        raise HTTPException(404, "not in sandbox mode")
    fired = services.scheduler.advance(services.sandbox, body.to)
    return ClockOut(now=services.sandbox.now(), fired=[f.as_dict() for f in fired])
