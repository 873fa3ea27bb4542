"""The part of `docs/api.md` that the code can say itself: every route, what it does, what
it takes and who may call it, from the OpenAPI document and the routes' permission
dependencies. `collections-es docs` writes it between the markers; a test fails when the
file differs from the routes."""

from __future__ import annotations

from typing import Any

from ..application import access
from ..domain.trail import CUSTOMER_ROLE
from .route_access import PORTAL_PATHS, PUBLIC_PATHS, Endpoint, documented_app, endpoints, permission

START = "<!-- generated:routes -->"
END = "<!-- /generated:routes -->"

# Pages FastAPI serves itself, outside the OpenAPI document.
_OWN_PAGES = {
    "/openapi.json": "This contract as an OpenAPI 3 document.",
    "/docs": "The interactive API documentation (Swagger UI).",
    "/docs/oauth2-redirect": "Swagger UI's OAuth2 redirect page.",
    "/redoc": "The API documentation (ReDoc).",
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _summary(operation: dict[str, Any]) -> str:
    """The first paragraph of the route's docstring, else its summary."""
    description = (operation.get("description") or "").strip()
    first = description.split("\n\n", 1)[0] if description else operation.get("summary", "")
    return _cell(first)


def _docstring(endpoint: Endpoint) -> str:
    """The first paragraph of the docstring of a route outside the OpenAPI document (the console's pages)."""
    call = getattr(endpoint.dependant, "call", None)
    return _cell(((call.__doc__ or "") if call else "").strip().split("\n\n", 1)[0])


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref")
        if ref:
            return document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _inputs(document: dict[str, Any], operation: dict[str, Any]) -> str:
    """Query parameters (`?name`) and body fields (`{field, optional?}`); path parameters are in the path."""
    parts = []
    query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    if query:
        parts.append("?" + "&".join(f"{name}=" for name in query))
    body = operation.get("requestBody")
    if body and "application/json" not in body["content"]:  # a file, e.g. text/csv
        parts.append(" or ".join(f"`{media}`" for media in body["content"]).replace("`", "") + " body")
    elif body:
        schema = _resolve(document, body["content"]["application/json"]["schema"])
        required = set(schema.get("required", []))
        names = sorted(schema.get("properties", {}), key=lambda name: name == "override")  # the override last
        fields = [name if name in required else f"{name}?" for name in names]
        optional = "" if body.get("required") else " (optional)"
        parts.append("{" + ", ".join(fields) + "}" + optional)
    return "`" + " ".join(parts) + "`" if parts else ""


def render_routes() -> str:
    """The generated table of docs/api.md: every route of the app in the order it is mounted."""
    app = documented_app()
    document = app.openapi()
    always = {(e.method, e.path) for e in endpoints(documented_app(sandbox=False))}
    lines = [
        START,
        "",
        "Generated from the routes by `collections-es docs` (`collections_es.api.api_docs`); a test",
        "fails when this table differs from the code. Roles: the routes' permission dependencies",
        "([access.md](access.md) has the matrices). Inputs: query parameters and body fields, `?` when optional.",
        "",
        "| method | path | what | inputs | roles |",
        "|---|---|---|---|---|",
    ]
    for endpoint in endpoints(app):
        operation = document["paths"].get(endpoint.path, {}).get(endpoint.method.lower())
        summary = _summary(operation) if operation else _OWN_PAGES.get(endpoint.path) or _docstring(endpoint)
        inputs = _inputs(document, operation) if operation else ""
        if endpoint.path in PORTAL_PATHS:
            roles = "the customer, by the signed link in the path"
        elif endpoint.path in PUBLIC_PATHS:
            roles = "anyone, no credentials"
        else:
            found = permission(endpoint.dependant)
            allowed = [r for r in access.ROLES if found and r in found.roles]
            roles = "every role" if len(allowed) == len(access.ROLES) else ", ".join(allowed) or "**nothing declared**"
            if found and CUSTOMER_ROLE in found.roles:  # no API key has it: the portal's forms send it
                roles = ", ".join([*allowed, f"{CUSTOMER_ROLE} (portal only)"])
        if (endpoint.method, endpoint.path) not in always:
            summary += " (sandbox clock only)"
        lines.append(f"| {endpoint.method} | `{endpoint.path}` | {summary} | {inputs} | {roles} |")
    lines += ["", END]
    return "\n".join(lines)


def with_routes(text: str) -> str:
    """`text` (docs/api.md) with its generated table replaced by the routes' own."""
    before, start, rest = text.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise ValueError(f"docs/api.md must hold the markers {START} and {END}")
    return before + render_routes() + after
