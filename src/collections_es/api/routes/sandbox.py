"""The sandbox clock (COLLECTIONS_CLOCK=sandbox only; otherwise these routes don't exist)."""

from __future__ import annotations

from fastapi import APIRouter

from ...application.access import check_view
from ..deps import CurrentActor, ServicesDep
from ..schemas import ClockAdvance, ClockOut

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


@router.get("/clock", response_model=ClockOut)
def get_clock(services: ServicesDep, actor: CurrentActor) -> ClockOut:
    """The sandbox clock's time."""
    check_view(actor.role, "sandbox.clock")
    assert services.sandbox is not None
    return ClockOut(now=services.sandbox.now())


@router.post("/clock/advance", response_model=ClockOut)
def advance_clock(body: ClockAdvance, services: ServicesDep, actor: CurrentActor) -> ClockOut:
    """Move the sandbox clock forward (never back)."""
    check_view(actor.role, "sandbox.clock")
    assert services.sandbox is not None
    now = services.sandbox.advance(body.to)
    return ClockOut(now=now, fired=[])
