"""The policy page: the collection policy in force, every version adopted (who, when) and what
changed between consecutive versions, field by field — read as `GET /policy` reads it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..api.deps import ServicesDep
from ..api.routes.time import _policy_out
from .web import PREFIX, ConsoleRoute, ConsoleUser, console_view, render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def shown(value: Any) -> str:
    """A policy value as text: lists and tables as compact JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def flat(value: Any, prefix: str) -> dict[str, Any]:
    """A document's fields by dotted path (tables within tables opened; lists kept whole)."""
    if not isinstance(value, dict):
        return {prefix: value}
    found: dict[str, Any] = {}
    for key in sorted(value):
        found |= flat(value[key], f"{prefix}.{key}" if prefix else str(key))
    return found


def rows(change: dict[str, Any]) -> list[dict[str, str]]:
    """One change as the API gives it, as table rows: a table that appears or goes (the first
    version's, say) is opened field by field, as `diff` opens tables present on both sides."""
    before, after = change.get("from"), change.get("to")
    if isinstance(before, dict) or isinstance(after, dict):
        old = flat(before, change["field"]) if isinstance(before, dict) else {}
        new = flat(after, change["field"]) if isinstance(after, dict) else {}
        if not isinstance(before, dict | None):
            old = {change["field"]: before}
        if not isinstance(after, dict | None):
            new = {change["field"]: after}
        return [
            {"field": field, "before": shown(old.get(field)), "after": shown(new.get(field))}
            for field in sorted(set(old) | set(new))
            if old.get(field) != new.get(field)
        ]
    return [{"field": change["field"], "before": shown(before), "after": shown(after)}]


@router.get(f"{PREFIX}/policy")
def policy_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("policy.read")],
) -> Response:
    """The policy in force, its versions newest first, and each version's changes to the one
    before (the first version's fields are what it set)."""
    out = _policy_out(services)
    versions = [
        {
            "version": entry.version,
            "adopted_at": entry.adopted_at,
            "adopted_by": entry.adopted_by,
            "first": i == 0,
            "changes": [row for change in entry.changes for row in rows(change)],
        }
        for i, entry in enumerate(out.history)
    ]
    fields = [{"field": field, "value": shown(value)} for field, value in flat(out.policy, "").items()]
    return render(
        request,
        "policy.html.j2",
        {
            "current": out.version,
            "fields": fields,
            "versions": list(reversed(versions)),
            "company_timezone": services.settings.report_timezone,
        },
    )
