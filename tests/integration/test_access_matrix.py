"""Every route of the app × every role, read from the app itself: 401 without a key
and with a wrong one; 403 for each role the route's permission leaves out, before
its body or parameters are validated; never 401 or 403 for a role it lets in.
A route that declares no permission and is not public fails the suite.

The console's pages (`/console/...`) are signed in to with a session instead of a key:
without one they answer 303 to the sign-in page; with one, 403 for each role their
permission leaves out and never 403 for a role it lets in; and each page requires the
same permission as the API route that serves its data (the same path without `/console`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collections_es.api.deps import PUBLIC_PATHS as API_PUBLIC_PATHS
from collections_es.api.route_access import PUBLIC_PATHS, Endpoint, documented_app, endpoints, permission, render_docs
from collections_es.application.access import COMMAND_ROLES, ROLES, VIEW_ROLES
from collections_es.application.clock import FixedClock, SandboxClock
from collections_es.console import PUBLIC_PATHS as CONSOLE_PUBLIC_PATHS

from ..conftest import START, make_services
from .conftest import Api
from .console import Console

# Plausible values for the path parameters of every route; an unknown parameter fails loudly.
PATH_VALUES = {"customer_id": "C-NOBODY", "receivable_ref": "INV-NOBODY", "kind": "reminder",
               "webhook_id": "no-such-webhook", "delivery_id": "no-such-delivery", "number": "1"}
# Valid JSON that no body schema accepts: a role let in gets 422, so a 403 proves the permission came first.
INVALID_BODY = ["deliberately", "not", "an", "object"]
# Query values every route that takes them refuses with 422.
INVALID_QUERY = {"limit": "0", "version": "0", "as_of": "not-a-date", "from": "not-a-date", "to": "not-a-date",
                 "format": "no-such-format", "status": "no-such-status", "group_by": "nothing"}


@pytest.fixture
def sandbox_api(database_url: str) -> Iterator[Api]:
    """The app in sandbox mode, so the sandbox clock's routes are there to be checked too."""
    services = make_services(database_url, SandboxClock(START))
    assert services.sandbox is not None
    yield Api(services)
    services.close()


def is_console(endpoint: Endpoint) -> bool:
    return endpoint.path == "/" or endpoint.path.startswith("/console/")


def is_portal(endpoint: Endpoint) -> bool:
    return endpoint.path.startswith("/portal/")


def app_endpoints(api: Api) -> list[Endpoint]:
    """The API's routes (the console's are checked with sessions, below; the portal's, guarded
    by the link in their path, in test_portal.py)."""
    return [e for e in endpoints(api.client.app) if not is_console(e) and not is_portal(e)]


def url(endpoint: Endpoint) -> str:
    return endpoint.path.format(**PATH_VALUES)


def invalid_input(endpoint: Endpoint) -> tuple[dict[str, Any], bool]:
    """Request arguments with a body and query parameters the route refuses; whether any applies."""
    names = {getattr(p, "alias", None) or p.name for p in endpoint.dependant.query_params}
    params = {k: v for k, v in INVALID_QUERY.items() if k in names}
    kwargs: dict[str, Any] = {"params": params}
    if endpoint.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = INVALID_BODY
    has_body = bool(endpoint.dependant.body_params)
    return kwargs, has_body or bool(params)


def problem_of(response, status: int) -> str | None:
    """None when the response is a problem details document with that status, else what is wrong."""
    if response.status_code != status:
        return f"{response.status_code} instead of {status}: {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content type {response.headers.get('content-type')}"
    body = response.json()
    if body.get("status") != status or not body.get("title") or not body.get("detail") or not body.get("type"):
        return f"not problem details: {body}"
    return None


def check_endpoint(api: Api, endpoint: Endpoint) -> list[str]:
    """Everything wrong with one route's access; empty when it is right for every role."""
    found = permission(endpoint.dependant)
    if found is None:
        return ["declares no permission (require_view / require_command) and is not in PUBLIC_PATHS"]
    errors: list[str] = []
    kwargs, invalid = invalid_input(endpoint)
    client = api.client
    for label, headers in (("no credentials", {}), ("a wrong token", {"Authorization": "Bearer ces_no-such-key"})):
        response = client.request(endpoint.method, url(endpoint), headers=headers, **kwargs)
        if wrong := problem_of(response, 401):
            errors.append(f"{label}: {wrong}")
        elif response.headers.get("www-authenticate") != "Bearer":
            errors.append(f"{label}: WWW-Authenticate is {response.headers.get('www-authenticate')!r}")
    for role in ROLES:
        response = client.request(endpoint.method, url(endpoint), headers=api.headers(role), **kwargs)
        if role in found.roles:
            if response.status_code in (401, 403):
                errors.append(f"{role} is allowed ({found.kind} {found.name}) but got {response.status_code}")
            elif invalid and response.status_code != 422:
                errors.append(f"{role} sent invalid input and got {response.status_code}, not 422")
        elif wrong := problem_of(response, 403):
            errors.append(f"{role} may not ({found.kind} {found.name}): {wrong}")
        elif response.json()["type"] != "/problems/forbidden":
            errors.append(f"{role}: problem type {response.json()['type']}")
    return errors


def test_every_route_answers_401_then_403_per_role_on_all_of_the_app(sandbox_api):
    protected = [e for e in app_endpoints(sandbox_api) if e.path not in PUBLIC_PATHS]
    assert any(e.path == "/sandbox/clock/advance" for e in protected), "the sandbox routes are checked too"
    assert len(protected) >= 40
    failures = {f"{e.method} {e.path}": errors for e in protected if (errors := check_endpoint(sandbox_api, e))}
    coverage = 100.0 * (len(protected) - len(failures)) / len(protected)
    assert not failures, f"access coverage {coverage:.1f}% of {len(protected)} routes; wrong: {failures}"
    assert coverage == 100.0


def test_every_route_is_public_by_name_or_declares_its_permission():
    app = documented_app(sandbox=True)
    undeclared = [f"{e.method} {e.path}" for e in endpoints(app) if e.path not in PUBLIC_PATHS and permission(e.dependant) is None]
    assert undeclared == []
    public = {e.path for e in endpoints(app) if e.path in PUBLIC_PATHS}
    assert {"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"} <= public


def test_every_view_and_command_of_the_matrix_guards_a_route():
    used = {(found.kind, found.name) for e in endpoints(documented_app()) if (found := permission(e.dependant))}
    declared = {("view", v) for v in VIEW_ROLES} | {("command", c) for c in COMMAND_ROLES}
    assert declared - used == set(), "a view or command in access.py that no route requires"
    assert used - declared == set()


def test_public_routes_answer_without_credentials(sandbox_api):
    served = [e for e in app_endpoints(sandbox_api) if e.path in PUBLIC_PATHS]
    assert {e.path for e in served} <= API_PUBLIC_PATHS
    for endpoint in served:
        response = sandbox_api.client.request(endpoint.method, endpoint.path)
        # No signing key is set here: the public key route says so with 404 (test_evidence.py has one set).
        expected = (404,) if endpoint.path == "/audit/public-key" else (200, 503)
        assert response.status_code in expected, f"{endpoint.path}: {response.status_code}"


def test_a_role_left_out_with_a_valid_body_is_403_and_nothing_is_recorded(api):
    """The 403 comes from the dependency; the application's own check stays behind it (defence in depth)."""
    from .conftest import CUSTOMER, invoice

    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    head = api.services.projections.head()
    response = api.as_("collector").post("/receivables", json=invoice("INV-NOT-YOURS"))
    assert problem_of(response, 403) is None
    assert "role 'collector' may not issue" in response.json()["detail"]
    assert api.services.projections.head() == head
    assert api.as_("auditor").get("/receivables/INV-NOT-YOURS").status_code == 404


def test_the_checked_in_access_docs_are_generated_from_the_routes_and_the_matrix():
    docs = Path(__file__).resolve().parents[2] / "docs" / "access.md"
    assert docs.read_text(encoding="utf-8") == render_docs(), "docs/access.md is stale; regenerate it with `collections-es docs`"
    text = render_docs()
    for endpoint in endpoints(documented_app()):
        if endpoint.path not in PUBLIC_PATHS:
            found = permission(endpoint.dependant)
            assert f"| {endpoint.method} | `{endpoint.path}`" in text and f"{found.kind} `{found.name}`" in text
    assert "POST | `/sandbox/clock/advance` (sandbox clock only) | view `sandbox.clock` | yes |  | yes |" in text
    assert "| GET | `/console/worklist` | view `worklist.read` |  | yes | yes | yes |" in text


# ---- the console --------------------------------------------------------------------------


@pytest.fixture
def console(sqlite_url: str) -> Iterator[Console]:
    services = make_services(sqlite_url, FixedClock(START))
    yield Console(services)
    services.close()


def console_endpoints(app: Any) -> list[Endpoint]:
    return [e for e in endpoints(app) if is_console(e)]


def test_every_console_page_requires_the_permission_of_the_api_route_serving_its_data():
    app = documented_app()
    api = {(e.method, e.path): permission(e.dependant) for e in endpoints(app) if not is_console(e)}
    pages = [e for e in console_endpoints(app) if e.path not in CONSOLE_PUBLIC_PATHS]
    assert len(pages) >= len(COMMAND_ROLES) + 2
    for page in pages:
        found = permission(page.dependant)
        assert found is not None, f"{page.method} {page.path} declares no permission (console_view / console_command)"
        assert api[(page.method, page.path.removeprefix("/console"))] == found, f"{page.method} {page.path}"


def test_console_pages_answer_303_without_a_session_then_403_or_not_per_role(console):
    pages = [e for e in console_endpoints(console.app) if e.path not in CONSOLE_PUBLIC_PATHS]
    anonymous = console.browser()
    failures = []
    for endpoint in pages:
        response = anonymous.request(endpoint.method, url(endpoint), data={} if endpoint.method == "POST" else None)
        if response.status_code != 303 or not response.headers["location"].startswith("/console/login"):
            failures.append(f"{endpoint.method} {endpoint.path} without a session: {response.status_code}")
    for role in ROLES:
        client, csrf = console.as_(role), console.csrf(role)
        for endpoint in pages:
            found = permission(endpoint.dependant)
            data = {"csrf": csrf} if endpoint.method == "POST" else None
            response = client.request(endpoint.method, url(endpoint), data=data)
            where = f"{endpoint.method} {endpoint.path} as {role}"
            if role in found.roles:
                if response.status_code in (401, 403) or response.headers.get("location", "").startswith("/console/login"):
                    failures.append(f"{where}: allowed ({found.kind} {found.name}) but {response.status_code}")
            elif response.status_code != 403 or not response.headers["content-type"].startswith("text/html"):
                failures.append(f"{where}: may not ({found.kind} {found.name}) but {response.status_code}")
    assert failures == []


def test_the_consoles_public_routes_are_its_way_in_and_its_stylesheet(console):
    client = console.browser()
    for endpoint in console_endpoints(console.app):
        if endpoint.path in CONSOLE_PUBLIC_PATHS and endpoint.method == "GET":
            response = client.get(endpoint.path.format(name="console.css"))
            assert response.status_code in (200, 303), endpoint.path
