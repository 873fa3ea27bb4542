"""Liveness, readiness and metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.encoders import jsonable_encoder
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
    """The database answers and no read model is stuck; each projection's lag behind the event log
    (and, for a stuck one, the event it failed to apply: 503); this process's role (`embedded`, or
    `api` when the projections, scheduler and senders run elsewhere) and what it runs."""
    try:
        with services.engine.execution_options(read_only=True).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        lag = services.projections.lag()
        stuck = services.projections.stuck()
    except Exception as exc:  # the database is down: not ready
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
    projections = {n: {"lag": v} | ({"stuck": jsonable_encoder(stuck[n])} if n in stuck else {}) for n, v in lag.items()}
    who = {"role": services.role, "runs": list(services.runs)}
    if stuck:
        return JSONResponse({"status": "stuck", "stuck": sorted(stuck), **who, "projections": projections}, status_code=503)
    return JSONResponse({"status": "ready", **who, "projections": projections})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: commands by name and outcome with latency, projection lag, timers due, outbox backlog."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
