"""Which permission each route requires, read from the routes' own dependencies
(`require_view` / `require_command`), so the route table in `docs/access.md` is
generated from the code that enforces it. The application layer knows the
roles; only this layer knows the routes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from ..application import access
from .deps import PUBLIC_PATHS as API_PUBLIC_PATHS


def _console_public() -> frozenset[str]:
    from ..console import PUBLIC_PATHS as CONSOLE_PUBLIC_PATHS

    return CONSOLE_PUBLIC_PATHS


def _portal_paths() -> tuple[frozenset[str], frozenset[str]]:
    from ..portal.pages import PATHS, PUBLIC_PATHS as PORTAL_PUBLIC

    return PATHS, PORTAL_PUBLIC


#: The customer portal's pages: no API key, the signed link in the path is the credential (ADR 0055).
PORTAL_PATHS, _PORTAL_PUBLIC = _portal_paths()
#: Every path anyone may reach: the API's probes and documents, the console's way in, the portal.
PUBLIC_PATHS: frozenset[str] = API_PUBLIC_PATHS | _console_public() | PORTAL_PATHS | _PORTAL_PUBLIC

try:  # FastAPI >= 0.137 keeps an included router as one lazy entry of app.routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI copies every route into app.routes
    iter_route_contexts = None


@dataclass(frozen=True)
class Endpoint:
    """One method of one route. `dependant` is None for Starlette routes (the API docs pages)."""

    method: str
    path: str
    dependant: Any


@dataclass(frozen=True)
class Permission:
    kind: str  # "view" or "command"
    name: str

    @property
    def roles(self) -> frozenset[str]:
        table = access.VIEW_ROLES if self.kind == "view" else access.COMMAND_ROLES
        return table[self.name]


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every (method, path) the app serves, HEAD left out (it follows GET)."""
    contexts = iter_route_contexts(app.routes) if iter_route_contexts else app.routes
    for route in contexts:
        original = getattr(route, "original_route", route)
        dependant = route.dependant if isinstance(original, APIRoute) else None
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield Endpoint(method, route.path, dependant)


def permission(dependant: Any) -> Permission | None:
    """The view or command a route's dependency tree requires, if any."""
    if dependant is None:
        return None
    for sub in dependant.dependencies:
        for kind in ("view", "command"):
            name = getattr(sub.call, kind, None)
            if name is not None:
                return Permission(kind, name)
        found = permission(sub)
        if found is not None:
            return found
    return None


def documented_app(*, sandbox: bool = True) -> FastAPI:
    """The routes alone, without services: enough to read their permissions."""
    from .app import include_routes

    app = FastAPI()
    include_routes(app, sandbox=sandbox)
    return app


def render_route_table() -> str:
    app = documented_app()
    always = {(e.method, e.path) for e in endpoints(documented_app(sandbox=False))}
    lines = [
        "## Routes",
        "",
        "Read from each route's `require_view` / `require_command` dependency, which",
        "answers 401 without a valid key and 403 for a role not listed, before the",
        "request's body or parameters are validated. The console's pages (`/console/...`)",
        "declare theirs with `console_view` / `console_command`: the same permission as the",
        "API route that serves their data, with a session in place of the key (303 to the",
        "sign-in page without one, a 403 page for a role not listed).",
        "",
        "| method | path | requires | " + " | ".join(access.ROLES) + " |",
        "|---|---|---|" + "---|" * len(access.ROLES),
    ]
    public = []
    for endpoint in endpoints(app):
        if endpoint.path in PUBLIC_PATHS:
            public.append(endpoint)
            continue
        found = permission(endpoint.dependant)
        sandbox = "" if (endpoint.method, endpoint.path) in always else " (sandbox clock only)"
        if found is None:
            lines.append(f"| {endpoint.method} | `{endpoint.path}`{sandbox} | **nothing declared** |" + " |" * len(access.ROLES))
            continue
        cells = " | ".join("yes" if r in found.roles else "" for r in access.ROLES)
        lines.append(f"| {endpoint.method} | `{endpoint.path}`{sandbox} | {found.kind} `{found.name}` | {cells} |")
    lines += [
        "",
        "Public, no credentials: " + ", ".join(f"{e.method} `{e.path}`" for e in public if e.path not in PORTAL_PATHS) + ".",
        "",
        "The customer portal, by the customer's signed link in the path ([portal.md](portal.md)): "
        + ", ".join(f"{e.method} `{e.path}`" for e in public if e.path in PORTAL_PATHS) + ".",
    ]
    return "\n".join(lines)


def render_docs() -> str:
    """The generated `docs/access.md`: the role matrices, then every route with what it requires."""
    return access.render_docs().rstrip("\n") + "\n\n" + render_route_table() + "\n"
