"""The FastAPI app factory."""

from __future__ import annotations

import time as _time
import uuid
from collections.abc import Callable
from datetime import datetime
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

import logging

from .. import __version__, console, logs
from ..console import web as console_web
from ..bootstrap import Services, follow_projections, run_checkpoints, run_notifier, run_scheduler
from . import errors
from .errors import problem
from .rate_limit import RateLimits
from ..bootstrap import run_webhooks  # beside the notifier (ADR 0045)
from .routes import (
    aftercare,
    audit,
    compliance,
    customers,
    evidence,
    health,
    imports,
    letters,
    notifications,
    receivables,
    reports,
    time,
    webhooks,
)
from .routes import portal_links
from ..portal import pages as portal_pages


request_log = logging.getLogger("collections_es.http")


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: Any, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}  # path prefix -> its own limit (imports take files)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next((n for prefix, n in self.larger.items() if path.startswith(prefix)), self.limit)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = problem(413, f"the body exceeds {limit} bytes")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await too_large(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing lets it through as a 413."""

    def __init__(self) -> None:
        super().__init__(413, "the request body is too large")


class RefuseNul:
    """A NUL in the path or query string is a malformed request (PostgreSQL text cannot hold it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            raw_path = (scope.get("raw_path") or b"").lower()
            if b"%00" in query or b"\x00" in query or b"%00" in raw_path or "\x00" in scope.get("path", ""):
                await problem(400, "the URL must not contain NUL characters", type_="/problems/malformed")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class CorrelationId:
    """Echo X-Correlation-ID (or the one generated) on every response, carry it on every log
    line written while the request is served (contextvars; `logs.bound`), and log one line per
    request: method, path (no query string), status, milliseconds. Never a body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        cid = headers.get(b"x-correlation-id", b"")[:128] or str(uuid.uuid4()).encode()
        if b"x-correlation-id" not in headers:
            scope["headers"] = [*scope.get("headers", []), (b"x-correlation-id", cid)]
        status = 500

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-correlation-id", cid)]
            await send(message)

        started = _time.perf_counter()
        with logs.bound(correlation_id=cid.decode("latin-1")):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                request_log.info(
                    "request",
                    extra={"method": scope.get("method"), "path": scope.get("path"), "status": status,
                           "duration_ms": round((_time.perf_counter() - started) * 1000, 3)},
                )


def create_app(
    services: Services,
    *,
    follow: bool = False,
    schedule: bool = False,
    notify: bool = False,
    monotonic: Callable[[], float] = _time.monotonic,
    wall_clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the app over wired services. `follow` runs the projection loop in-process,
    `schedule` the scheduler loop (system clock only; the sandbox clock fires on advance),
    `notify` the outbox sender loop. `monotonic` is the rate limiter's time source; the
    default is bound at import, so freezegun freezing `time.monotonic` in a test does not
    stop the buckets refilling (ADR 0031). `wall_clock` is the console sessions' clock (default
    the system's: the sandbox clock moving must not end sessions; ADR 0040)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if follow:
            follow_projections(services)
        if schedule and services.sandbox is None:
            run_scheduler(services, services.settings.scheduler_interval_seconds)
            run_checkpoints(services, services.settings.scheduler_interval_seconds)  # ADR 0061
        if notify:
            run_notifier(services, services.settings.notify_interval_seconds)
            run_webhooks(services, services.settings.webhooks_interval_seconds)  # notify: the webhook sender too
        yield
        services.stop.set()

    app = FastAPI(
        title="collections-es",
        version=__version__,
        description="Event-sourced accounts-receivable collection service.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.rate_limits = RateLimits.from_settings(services.settings, monotonic)
    app.state.console_sessions = console_web.make_session_store(services, wall_clock)
    errors.install(app)
    include_routes(app, sandbox=services.sandbox is not None)
    app.add_middleware(RefuseNul)
    app.add_middleware(CorrelationId)
    app.add_middleware(
        BodyLimit, limit=services.settings.max_body_bytes, larger={"/imports/": services.settings.import_max_bytes}
    )
    return app


def api_worker() -> FastAPI:
    """One of `serve --workers N`'s processes (uvicorn's factory): the API only, over services of
    its own built from the settings; the projections, scheduler and senders are other processes."""
    from ..bootstrap import build
    from ..config import get_settings
    import os

    settings = get_settings()
    logs.configure(settings.log_level or "INFO", settings.log_format)
    services = build(settings)
    services.role, services.runs = "api", ("api",)
    request_log.info("role: api worker (pid %d)", os.getpid(), extra={"role": "api"})
    return create_app(services)


def include_routes(app: FastAPI, *, sandbox: bool) -> None:
    """Every router; the sandbox clock's only in sandbox mode."""
    receivables.document_command_bodies(app)
    app.include_router(health.router)
    app.include_router(customers.router)
    app.include_router(letters.router)
    app.include_router(evidence.router)
    app.include_router(receivables.router)
    app.include_router(reports.router)
    app.include_router(audit.router)
    app.include_router(compliance.router)
    app.include_router(aftercare.router)
    app.include_router(notifications.router)
    app.include_router(time.policy_router)
    app.include_router(time.admin_router)
    app.include_router(imports.router)
    app.include_router(webhooks.router)
    app.include_router(portal_links.router)
    app.include_router(portal_pages.router)
    if sandbox:
        app.include_router(time.sandbox_router)
    for router in console.ROUTERS:
        app.include_router(router)
