"""The console's compliance page: findings counted by collector and by rule, filtered by
collector, rule and period, listed with a link to the event each judged on the receivable's
timeline, the overrides (`override.used`) apart, and the rules catalogue. A collector sees
their own findings only, as the API shows them (`findings_view`, `findings_counts`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..api.deps import ServicesDep
from ..api.routes.compliance import findings_counts, findings_view
from ..domain.compliance import RULES
from .reports import day_of
from .web import PREFIX, ConsoleRoute, ConsoleUser, console_view, render, url_with

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: Findings on one page of the list (then *Next*, by the API's cursor).
PAGE = 100
OVERRIDE = "override.used"


@router.get(f"{PREFIX}/compliance/findings")
def findings_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("compliance.findings")],
    collector: Annotated[str | None, Query(max_length=128)] = None,
    rule_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """Findings by collector and by rule, the list (each linked to its event on the receivable's
    timeline), the overrides, and the rules; a collector's own only."""
    scope: dict[str, Any] = {
        "collector": collector or None,
        "rule_id": rule_id or None,
        "from_": day_of("from", from_),
        "to": day_of("to", to),
    }
    if user.role == "collector":
        scope["collector"] = user.actor.id
    counts = findings_counts(services, user.actor, **scope)
    rows, next_cursor, lag = findings_view(services, user.actor, limit=PAGE, cursor=cursor or None, **scope)
    by_rule: dict[str, int] = {}
    for rules in counts.values():
        for rule, count in rules.items():
            by_rule[rule] = by_rule.get(rule, 0) + count
    by_collector = sorted(
        ((who, sum(rules.values()), dict(sorted(rules.items()))) for who, rules in counts.items()),
        key=lambda c: (c[0] is None, c[0] or ""),
    )
    collectors = sorted({k.actor for k in services.keys.list() if k.role == "collector" and k.revoked_at is None})
    return render(
        request,
        "findings.html.j2",
        {
            "lag": lag,
            "findings": [r for r in rows if r["rule_id"] != OVERRIDE],
            "overrides": [r for r in rows if r["rule_id"] == OVERRIDE],
            "by_collector": by_collector,
            "by_rule": sorted(by_rule.items()),
            "total": sum(by_rule.values()),
            "rules": RULES,
            "collector": scope["collector"] or "",
            "collectors": collectors,
            "picks_collector": user.role != "collector",
            "rule_id": scope["rule_id"] or "",
            "from_": from_ or "",
            "to": to or "",
            "next_page": url_with(request, cursor=next_cursor, lang=None) if next_cursor else None,
            "first_page": url_with(request, cursor=None, lang=None) if cursor else None,
            "company_timezone": services.settings.report_timezone,
            "filter_url": lambda **changes: url_with(request, cursor=None, lang=None, **changes),
        },
    )
