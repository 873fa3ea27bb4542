"""The audit page: verify every hash chain of the store on request (the first break shown, with a
link to its receivable), export the log (JSON lines or CSV) through the session, and — once the
app serves `GET /receivables/{id}/evidence` — a receivable's evidence bundle through the session.

Each route is its API route's path under /console with the same permission, and reads through the
API route's own code (`audit.verify` over the projected versions; the export and evidence routes'
functions), so a page never differs from what curl gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from ..api.deps import ServicesDep
from ..api.routes import audit as api_audit
from ..api.routes import evidence as api_evidence
from ..application import audit
from ..application.access import VIEW_ROLES
from ..application.fields import AwareInstant
from ..domain.errors import NotFoundError
from .i18n import N_
from .web import PREFIX, ConsoleRoute, ConsoleUser, console_view, render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: The API route whose bundle the console offers, and the view it requires (both arrive with
#: issue 14's evidence bundles; until then the console neither links nor serves one).
EVIDENCE_PATH = "/receivables/{receivable_ref}/evidence"
EVIDENCE_VIEW = "evidence.read"
_INSTANT = TypeAdapter(AwareInstant)
ReceivableRef = Annotated[str, Path(max_length=128)]

#: What each kind of break means, in the reader's language (kinds: application/audit.py KINDS).
BREAK_KINDS = {
    audit.EDITED: N_("edited: the stored content does not match its hash"),
    audit.DELETED: N_("deleted: versions are missing from the store"),
    audit.REORDERED: N_("reordered: an event is stored at another version"),
    audit.UNDECODABLE: N_("undecodable: the stored event cannot be read"),
    audit.BROKEN_LINK: N_("broken link: an event does not follow the one before it"),
    audit.REHASHED: N_("re-hashed: the chain was rewritten since the last checkpoint"),
    audit.TRUNCATED: N_("truncated: the last events were deleted since the last checkpoint"),
    audit.CHAIN_DELETED: N_("chain deleted: no event is left of a chain the last checkpoint recorded"),
    audit.CHECKPOINT: N_("checkpoint: a signed checkpoint does not check"),
}


@router.get(f"{PREFIX}/audit/verify")
def verify_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("audit.read")],
    run: Annotated[bool, Query(description="Run the verification now (it only reads)")] = False,
) -> Response:
    """Verify the whole store on request, as `GET /audit/verify` does: ok, the break count and the
    first break with a link to its receivable; export links for the log."""
    report = api_audit.verify_store(services).as_dict() if run else None
    return render(
        request,
        "audit.html.j2",
        {
            "report": report,
            "break_kinds": BREAK_KINDS,
            "checked_at": services.clock.now(),
            "company_timezone": services.settings.report_timezone,
            "formats": tuple(api_audit.MEDIA_TYPES),
        },
    )


def _instant(name: str, value: str | None) -> Any:
    """An empty field is no bound; anything else must be an instant with its zone (the API's rule)."""
    if value is None or not value.strip():
        return None
    try:
        return _INSTANT.validate_python(value.strip())
    except ValidationError:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", name), "msg": "must be an instant with its zone, e.g. 2026-03-01T00:00:00+08:00", "input": value}]
        ) from None


@router.get(f"{PREFIX}/audit/export")
def export(
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("audit.read")],
    format: Literal["jsonl", "csv"] = "jsonl",  # noqa: A002 - the API's parameter name
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The log as `GET /audit/export` streams it (masked for roles without need of contact
    details), downloaded with the session rather than a key."""
    return api_audit.export(services, user.actor, format, _instant("from", from_), _instant("to", to))


# ---- evidence bundles ---------------------------------------------------------------------

_EVIDENCE = api_evidence


def _serves(app: Any, path: str) -> bool:
    """Whether the running app has a GET route at `path`, looked up once per app and path (through
    `route_access.endpoints`, which opens included routers as the access test does)."""
    from ..api.route_access import endpoints

    known: dict[str, bool] | None = getattr(app.state, "console_routes_served", None)
    if known is None:
        known = app.state.console_routes_served = {}
    if path not in known:
        known[path] = any(e.method == "GET" and e.path == path for e in endpoints(app))
    return known[path]


def _app_serves_evidence(app: Any) -> bool:
    return _serves(app, EVIDENCE_PATH)


def evidence_link(request: Request, user: ConsoleUser) -> bool:
    """Whether the receivable page links the evidence bundle: the running app serves the API's
    route and the console's, and the role may read a bundle."""
    return (
        user.role in VIEW_ROLES.get(EVIDENCE_VIEW, frozenset())
        and _app_serves_evidence(request.app)
        and _serves(request.app, PREFIX + EVIDENCE_PATH)
    )


def evidence_page(module: Any) -> Callable[..., Response]:
    """The console's evidence route over the API route's module (`evidence_bundle(receivable_ref,
    services, actor, response)` builds the bundle and its download headers)."""

    def evidence(
        receivable_ref: ReceivableRef,
        request: Request,
        services: ServicesDep,
        user: Annotated[ConsoleUser, console_view(EVIDENCE_VIEW)],
    ) -> Response:
        """A receivable's evidence bundle, as `GET /receivables/{id}/evidence` serves it."""
        if not _app_serves_evidence(request.app):
            raise NotFoundError("this service does not serve evidence bundles")
        return module.evidence_bundle(receivable_ref, services, user.actor, Response())

    return evidence


router.add_api_route(f"{PREFIX}{EVIDENCE_PATH}", evidence_page(_EVIDENCE), methods=["GET"], name="console_evidence")
