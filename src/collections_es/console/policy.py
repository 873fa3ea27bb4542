"""The policy page: the collection policy in force, every version adopted (who, when) and what
changed between consecutive versions, field by field — read as `GET /policy` reads it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..api.deps import ServicesDep
from ..api.routes.time import _policy_out
from ..domain.policy_book import diff
from .web import PREFIX, ConsoleRoute, ConsoleUser, console_view, render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def shown(value: Any) -> str:
    """A policy value as text: lists and tables as compact JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


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
            "changes": [
                {"field": c["field"], "before": shown(c.get("from")), "after": shown(c.get("to"))} for c in entry.changes
            ],
        }
        for i, entry in enumerate(out.history)
    ]
    fields = [{"field": c["field"], "value": shown(c["to"])} for c in diff({}, out.policy)]
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
