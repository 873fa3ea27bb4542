"""Liveness, readiness and metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ...adapters.metrics import CONTENT_TYPE

from ..deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """The database answers; each projection's lag behind the event log; this process's role
    (`embedded`, or `api` when the projections, scheduler and senders run elsewhere) and what it runs."""
    try:
        with services.engine.execution_options(read_only=True).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        lag = services.projections.lag()
    except Exception as exc:  # the database is down: not ready
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
    return JSONResponse({
        "status": "ready",
        "role": services.role,
        "runs": list(services.runs),
        "projections": {n: {"lag": v} for n, v in lag.items()},
    })


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: commands by name and outcome with latency, projection lag, timers due, outbox backlog."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
