"""Supervision: the compliance rules, their findings, and collectors assessed by both.

Findings come from the compliance read model (projections/compliance.py), read
as of the service's clock: a deadline finding appears once its deadline has
passed without the obligation being met.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from projections import compliance as findings_model
from projections import aftercare, kpis

from ...application.access import PII_ROLES
from ...application.pii import Redactor
from ...domain.calendar import start_of_day
from ...domain.compliance import RULES, policy_figures
from ...domain.trail import Actor
from ..deps import ServicesDep, read_current, require_view
from ..schemas import Day, KpiBlockOut
from .reports import after_report_day, invalid_query, money_strings, report_period

router = APIRouter(tags=["supervision"])


class RuleOut(BaseModel):
    id: str
    kind: str = Field(
        description="`preventive` (refused unless overridden), `recorded` (judged when a contact is recorded, "
        "never refused: each breach a finding at once) or `detective` (reported)"
    )
    title: str
    description: str
    policy_figures: dict[str, Any] = Field(description="The figures of the policy in force that the rule reads")
    commands: list[str] = Field(description="The commands the rule refuses (preventive rules)")
    judged_on: list[str] = Field(description="The commands whose record the rule judges without refusing them")


class RulesOut(BaseModel):
    policy_version: str
    rules: list[RuleOut]


class FindingOut(BaseModel):
    rule_id: str
    receivable_id: str
    invoice_number: str
    collector: str | None
    occurred_at: datetime
    detail: str
    actor: str | None = Field(description="Who acted, for findings about an event (None for a missed deadline)")
    policy_version: str | None = Field(description="The policy version the finding was judged by")
    event_version: int | None = Field(description="The receivable version of the event judged, if any")
    overridden_rule_id: str | None = Field(
        description="For `override.used`: the rule passed (by a supervisor's override, or a contact exception)"
    )


class ComplaintCountsOut(BaseModel):
    received: int = 0
    upheld: int = 0
    not_upheld: int = 0
    open: int = 0


class SatisfactionOut(BaseModel):
    revisits: int = Field(0, description="Revisits made in the period, counted for the collector of the customer's last settlement")
    mean: float | None = Field(None, description="Their mean satisfaction (1–5), 2 places; null without any")
    scores: dict[str, int] = Field(default_factory=lambda: {str(s): 0 for s in range(1, 6)}, description="Revisits per score")


class CollectorAssessmentOut(BaseModel):
    collector: str | None
    findings: dict[str, int] = Field(description="Findings in the period, by rule id")
    findings_total: int
    complaints: ComplaintCountsOut = Field(
        default_factory=ComplaintCountsOut,
        description="Complaints recorded in the period about the collector's work; upheld ones count beside the findings",
    )
    satisfaction: SatisfactionOut = Field(default_factory=SatisfactionOut, description="Customer satisfaction from revisits")
    kpis: list[KpiBlockOut] = Field(description="The collector's KPIs in the period, per currency")


class CollectorsReportOut(BaseModel):
    from_: date = Field(alias="from")
    to: date
    collectors: list[CollectorAssessmentOut]

    model_config = {"populate_by_name": True}


def _instants(services: Any, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """A period of days, in the reporting time zone, as [start, end) instants."""
    tz = services.settings.report_timezone
    for name, value in (("from", start), ("to", end)):
        if value is not None and not date(1970, 1, 2) <= value <= date(2199, 12, 30):
            raise invalid_query(name, "must be between 1970-01-02 and 2199-12-30", str(value))
    if start is not None and end is not None and start > end:
        raise invalid_query("from", "must not be after 'to'", str(start))
    return (
        start_of_day(start, tz) if start else None,
        after_report_day(services, end) if end else None,
    )


@router.get("/compliance/rules", response_model=RulesOut)
def rules(services: ServicesDep, actor: Annotated[Actor, require_view("compliance.rules")]) -> Any:
    """Every compliance rule: stable id, kind, plain description and the policy figures it reads."""
    policy = services.app.policy()
    return {
        "policy_version": policy.version,
        "rules": [
            {
                **vars(rule),
                "policy_figures": policy_figures(rule, policy),
                "commands": list(rule.commands),
                "judged_on": list(rule.judged_on),
            }
            for rule in RULES.values()
        ],
    }


@router.get("/compliance/findings", response_model=list[FindingOut])
def findings(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("compliance.findings")],
    response: Response,
    collector: Annotated[str | None, Query(max_length=128, description="A collector's findings (a collector sees only their own)")] = None,
    rule_id: Annotated[str | None, Query(max_length=64)] = None,
    receivable_id: Annotated[str | None, Query(max_length=36)] = None,
    from_: Annotated[Day | None, Query(alias="from", description="First day (reporting time zone)")] = None,
    to: Annotated[Day | None, Query(description="Last day, included")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=128, description="`X-Next-Cursor` of the previous page")] = None,
) -> Any:
    """Findings as of now, oldest first: per receivable, collector, rule and period."""
    page, next_cursor, lag = findings_view(
        services, actor, collector=collector, rule_id=rule_id, receivable_id=receivable_id, from_=from_, to=to,
        limit=limit, cursor=cursor,
    )
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)
    if next_cursor is not None:
        response.headers["X-Next-Cursor"] = next_cursor
    return page


def findings_scope(
    services: Any, actor: Actor, collector: str | None, rule_id: str | None, from_: date | None, to: date | None
) -> dict[str, Any]:
    """The filters of a findings query, checked as the API checks them: a collector's own findings
    only (another collector named: 422), a known rule, a period of days in the reporting time zone."""
    if actor.role == "collector":
        if collector not in (None, actor.id):
            raise invalid_query("collector", "a collector sees only their own findings", collector)
        collector = actor.id
    if rule_id is not None and rule_id not in RULES:
        raise invalid_query("rule_id", f"no rule '{rule_id}'; see GET /compliance/rules", rule_id)
    start, end = _instants(services, from_, to)
    return {"now": services.clock.now(), "start": start, "end": end, "collector": collector, "rule_id": rule_id}


def findings_view(
    services: Any,
    actor: Actor,
    *,
    collector: str | None = None,
    rule_id: str | None = None,
    receivable_id: str | None = None,
    from_: date | None = None,
    to: date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Findings as `GET /compliance/findings` and the console show them: one page, oldest first,
    the cursor of the next page (None at the end) and the events the read model is still behind
    (0 when current). Free text is masked for the roles without need, as the API masks it."""
    scope = findings_scope(services, actor, collector, rule_id, from_, to)
    try:
        after = findings_model.parse_cursor(cursor) if cursor is not None else None
    except ValueError:
        raise invalid_query("cursor", "not a cursor this API gave", cursor) from None
    lag = services.read_models("compliance")
    with services.snapshot() as conn:
        rows = findings_model.list_findings(conn, receivable_id=receivable_id, limit=limit + 1, after=after, **scope)
    page = rows[:limit]
    next_cursor = findings_model.cursor_of(page[-1]) if len(rows) > limit else None
    # An override's reason is free text: for roles without need, what looks like a contact detail is masked.
    redact = (lambda text: text) if actor.role in PII_ROLES else Redactor().text
    return [{**r, "occurred_at": r["occurred_at"].replace(tzinfo=UTC), "detail": redact(r["detail"])} for r in page], next_cursor, lag


def findings_counts(
    services: Any, actor: Actor, *, collector: str | None = None, rule_id: str | None = None,
    from_: date | None = None, to: date | None = None,
) -> dict[str | None, dict[str, int]]:
    """Per collector, the number of findings of each rule, within the same scope as `findings_view`
    (a collector: their own); the read model caught up first."""
    scope = findings_scope(services, actor, collector, rule_id, from_, to)
    services.read_models("compliance")
    with services.snapshot() as conn:
        return {who: dict(rules) for who, rules in findings_model.counts_by_collector(conn, **scope).items()}


@router.get("/reports/collectors", response_model=CollectorsReportOut, response_model_by_alias=True)
def collectors_report(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("reports.collectors")],
    response: Response,
    from_: Annotated[Day | None, Query(alias="from", description="First day (default: 30 days before `to`)")] = None,
    to: Annotated[Day | None, Query(description="Last day, included (default: today)")] = None,
    collector: Annotated[str | None, Query(max_length=128)] = None,
) -> Any:
    """Per collector and period: findings by rule beside the KPIs of the read-model issue."""
    start, end = report_period(services, from_, to)
    first, after_last = _instants(services, start, end)
    read_current(services, response, "compliance", "kpis", "aging", "aftercare")
    with services.snapshot() as conn:
        counts = findings_model.counts_by_collector(
            conn,
            now=services.clock.now(),
            start=first,
            end=after_last,
            collector=collector,
        )
        figures = money_strings(kpis.compute(conn, start, end, collector=collector))
        assert first is not None and after_last is not None
        complaints = aftercare.complaint_counts(conn, start=first, end=after_last, collector=collector)
        satisfaction = aftercare.satisfaction(conn, start=first, end=after_last, collector=collector)
    blocks: dict[str | None, list[dict[str, Any]]] = {}
    for block in figures["collectors"]:
        who = block.pop("collector")
        blocks.setdefault(who, []).append(block)
    names = sorted(set(counts) | set(blocks) | set(complaints) | set(satisfaction), key=lambda c: (c is None, c or ""))
    return {
        "from": start,
        "to": end,
        "collectors": [
            {
                "collector": who,
                "findings": dict(sorted(counts.get(who, {}).items())),
                "findings_total": sum(counts.get(who, {}).values()),
                "complaints": complaints.get(who, {}),
                "satisfaction": satisfaction.get(who, aftercare.satisfaction_figures({})),
                "kpis": blocks.get(who, []),
            }
            for who in names
        ],
    }

