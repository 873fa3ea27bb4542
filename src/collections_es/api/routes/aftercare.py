"""After collection: complaints, and the reasons customers give for not paying (docs/aftercare.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from projections import aftercare

from ...application.access import PII_ROLES
from ...application.pii import Redactor
from ...domain.aftercare import vocabulary
from ...domain.money import format_money
from ...domain.trail import Actor
from ..deps import ServicesDep, read_current, require_view
from ..schemas import Day
from .compliance import _instants
from .reports import invalid_query, report_period

router = APIRouter(tags=["after collection"])


class ComplaintOut(BaseModel):
    receivable_id: str
    complaint: int = Field(description="The complaint's id: the receivable's version that recorded it")
    invoice_number: str
    customer_id: str
    collector: str | None = Field(description="Whom it concerns: who made the contact it is about, else the receivable's collector")
    about_version: int | None
    channel: str
    severity: str
    text: str
    recorded_at: datetime
    recorded_by: str
    outcome: Literal["upheld", "not_upheld"] | None = Field(description="None while open")
    action: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class ReasonBalanceOut(BaseModel):
    currency: str
    balance: str


class ReasonFiguresOut(BaseModel):
    reason: str = Field(description="A code of the policy's vocabulary, or `unclassified`")
    count: int = Field(description="Contacts and disputes that recorded it in the period")
    receivables: int = Field(description="Receivables whose latest reason in the period it is")
    balances: list[ReasonBalanceOut] = Field(description="Their balances when that latest reason was recorded, per currency")


class ReasonGroupOut(BaseModel):
    key: str | None = Field(description="The tier, collector or customer (null: none)")
    reasons: list[ReasonFiguresOut]


class ReasonsReportOut(BaseModel):
    from_: date = Field(alias="from")
    to: date
    group_by: str
    vocabulary: list[str] = Field(description="The reason codes of the policy in force, `unclassified` last")
    groups: list[ReasonGroupOut]
    totals: list[ReasonFiguresOut]

    model_config = ConfigDict(populate_by_name=True)


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC)


@router.get("/complaints", response_model=list[ComplaintOut])
def complaints(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("complaints.read")],
    response: Response,
    collector: Annotated[str | None, Query(max_length=128, description="Complaints about one collector (a collector: their own)")] = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    receivable_id: Annotated[str | None, Query(max_length=36)] = None,
    open: bool = False,  # noqa: A002 - the query parameter's public name
    from_: Annotated[Day | None, Query(alias="from", description="First day recorded (reporting time zone)")] = None,
    to: Annotated[Day | None, Query(description="Last day, included")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Any:
    """Complaints about the collection and their outcomes, per collector, customer or receivable; oldest first."""
    return complaints_view(services, actor, response, collector=collector, customer_id=customer_id,
                           receivable_id=receivable_id, open_only=open, from_=from_, to=to, limit=limit)


def complaints_view(services: Any, actor: Actor, response: Response | None = None, *, collector: str | None = None,
                    from_: date | None = None, to: date | None = None, open_only: bool = False, **where: Any) -> list[dict[str, Any]]:
    """The complaints as `GET /complaints` and the console show them (free text masked for roles without need)."""
    if actor.role == "collector":
        if collector not in (None, actor.id):
            raise invalid_query("collector", "a collector sees only the complaints about their own work", collector)
        collector = actor.id
    start, end = _instants(services, from_, to)
    lag = services.read_models("aftercare")
    if lag and response is not None:
        response.headers["X-Projection-Lag"] = str(lag)
    with services.snapshot() as conn:
        rows = aftercare.list_complaints(conn, collector=collector, start=start, end=end, open_only=open_only, **where)
    redact = (lambda text: text) if actor.role in PII_ROLES else Redactor().text
    return [
        {**r, "text": redact(r["text"]), "action": redact(r["action"]) if r["action"] else None,
         "recorded_at": _aware(r["recorded_at"]), "resolved_at": _aware(r["resolved_at"])}
        for r in rows
    ]


@router.get("/reports/non-payment-reasons", response_model=ReasonsReportOut, response_model_by_alias=True)
def non_payment_reasons(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("reports.non_payment_reasons")],
    response: Response,
    from_: Annotated[Day | None, Query(alias="from", description="First day (default: 30 days before `to`)")] = None,
    to: Annotated[Day | None, Query(description="Last day, included (default: today)")] = None,
    group_by: Literal["tier", "collector", "customer"] = "tier",
) -> Any:
    """Why customers do not pay: contacts and disputes per reason of the policy's vocabulary, with balances."""
    data, lag = reasons_view(services, from_, to, group_by)
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)
    return data


def reasons_view(services: Any, from_: date | None, to: date | None, group_by: str) -> tuple[dict[str, Any], int]:
    """The reasons report as the API and the console show it (money as wire strings)."""
    start, end = report_period(services, from_, to)
    first, after_last = _instants(services, start, end)
    assert first is not None and after_last is not None
    policy = services.app.policy()
    lag = services.read_models("aftercare")
    with services.snapshot() as conn:
        groups = aftercare.reasons_report(conn, start=first, end=after_last, group_by=group_by, policy=policy)
    totals: dict[str, dict[str, Any]] = {}
    for group in groups:
        for figures in group["reasons"]:
            total = totals.setdefault(figures["reason"], {"reason": figures["reason"], "count": 0, "receivables": 0, "balances": {}})
            total["count"] += figures["count"]
            total["receivables"] += figures["receivables"]
            for b in figures["balances"]:
                total["balances"][b["currency"]] = total["balances"].get(b["currency"], 0) + b["balance"]
    codes = vocabulary(policy)
    order = {code: i for i, code in enumerate(codes)}

    def wire(figures: dict[str, Any], balances: list[tuple[str, Any]]) -> dict[str, Any]:
        return {**figures, "balances": [{"currency": c, "balance": format_money(v)} for c, v in balances]}

    data = {
        "from": start,
        "to": end,
        "group_by": group_by,
        "vocabulary": codes,
        "groups": [
            {"key": g["key"], "reasons": [wire(f, [(b["currency"], b["balance"]) for b in f["balances"]]) for f in g["reasons"]]}
            for g in groups
        ],
        "totals": [
            wire(t, sorted(t["balances"].items()))
            for t in sorted(totals.values(), key=lambda t: (order.get(t["reason"], len(order)), t["reason"]))
        ],
    }
    return data, lag


def satisfaction_view(services: Any, start: date, end: date, collector: str | None) -> tuple[dict[str, Any], int]:
    """Satisfaction from the revisits made in a period of days: everyone's and each collector's
    (as the collectors report counts them), for the console's KPIs page."""
    first, after_last = _instants(services, start, end)
    assert first is not None and after_last is not None
    lag = services.read_models("aftercare")
    with services.snapshot() as conn:
        per = aftercare.satisfaction(conn, start=first, end=after_last, collector=collector)
    counts: dict[int, int] = {}
    for figures in per.values():
        for score, n in figures["scores"].items():
            counts[int(score)] = counts.get(int(score), 0) + n
    collectors = [{"collector": who, **per[who]} for who in sorted(per, key=lambda c: (c is None, c or ""))]
    return {"overall": aftercare.satisfaction_figures(counts), "collectors": collectors}, lag
