"""The console: server-rendered pages for the people who collect, supervise and audit,
under /console/ in the same app (ADR 0040). `ROUTERS` are its routes (`api.app.include_routes`
includes each); `web` holds what every page shares (sessions, permissions, CSRF, headers,
templates, the navigation `NAV`).

Adding a page: a module here with `router = APIRouter(route_class=ConsoleRoute,
include_in_schema=False)` and its route at `/console/<the API route's path>` declaring
`console_view("<that route's view>")`; its router in `ROUTERS`; a template extending
`base.html.j2`; a `Page` in `web.NAV` (with `offered=` when the service may not have it, as the
sandbox clock); its messages in a `.po` file of `locale/zh_CN/LC_MESSAGES/`.
"""

from fastapi import APIRouter

from . import aftercare, audit, compliance, policy, reports, routes, sandbox
from .routes import PUBLIC_PATHS
from .web import NAV, Page, console_command, console_view

#: Every router of the console, in the order they are included.
ROUTERS: list[APIRouter] = [
    routes.router, reports.router, compliance.router, audit.router, policy.router, sandbox.router, aftercare.router,
]

__all__ = ["NAV", "PUBLIC_PATHS", "Page", "ROUTERS", "console_command", "console_view"]
