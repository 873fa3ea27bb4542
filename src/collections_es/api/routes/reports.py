"""Views for supervisors and collectors: aging, the worklist, KPIs.

Each is served from its read model; before reading, the read model is brought
up to the log's head as of the request (read-your-writes). If it cannot get
there within COLLECTIONS_READ_WAIT_SECONDS the answer is served as it is, with
`X-Projection-Lag: <events behind>`.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from projections import aftercare, aging, kpis, worklist
from projections.rows import from_minor

from ...application.access import commands_for
from ...domain import lifecycle
from ...domain.calendar import start_of_day
from ...domain.money import format_money
from ...domain.trail import Actor
from ..deps import ServicesDep, require_view
from ..schemas import AgingReportOut, Day, KpisOut, WorklistOut

router = APIRouter(tags=["views"])

MAX_KPI_DAYS = 3660


def _today(services: Any) -> date:
    return services.clock.now().astimezone(ZoneInfo(services.settings.report_timezone)).date()


def invalid_query(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


def check_report_day(field: str, day: date) -> date:
    """A day a report can be as of (422 naming the query field otherwise)."""
    if not date(1970, 1, 1) <= day <= date(2199, 12, 31):
        raise invalid_query(field, "must be between 1970-01-01 and 2199-12-31", str(day))
    return day


def after_report_day(services: Any, day: date) -> datetime:
    """The first instant after `day` in the company's time zone (COLLECTIONS_TIMEZONE): what is
    recorded before it happened on or before that day. `as_of` a day means as of its end."""
    return start_of_day(day + timedelta(days=1), services.settings.report_timezone)


def report_period(services: Any, from_: date | None, to: date | None) -> tuple[date, date]:
    """A period of days for a report: by default the 30 days to today; bounded, in order and
    at most MAX_KPI_DAYS long, else 422 naming the query field at fault."""
    end = to or _today(services)
    start = from_ or end - timedelta(days=29)
    for name, value in (("from", start), ("to", end)):
        if not date(1970, 1, 2) <= value <= date(2199, 12, 31):
            raise invalid_query(name, "must be between 1970-01-02 and 2199-12-31", str(value))
    if start > end:
        raise invalid_query("from", "must not be after 'to'", str(start))
    if (end - start).days >= MAX_KPI_DAYS:
        raise invalid_query("from", f"a period is at most {MAX_KPI_DAYS} days", str(start))
    return start, end


def money_strings(value: Any) -> Any:
    """Decimals to wire strings, recursively."""
    if isinstance(value, dict):
        return {k: money_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [money_strings(v) for v in value]
    if isinstance(value, Decimal):
        return format_money(value)
    return value


@router.get("/reports/aging", response_model=AgingReportOut, responses={200: {"content": {"text/csv": {}}}})
def aging_report(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("reports.aging")],
    response: Response,
    as_of: Annotated[Day | None, Query(description="The day to report as of (default: today)")] = None,
    group_by: Literal["customer", "collector", "currency"] = "currency",
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's public name
) -> Any:
    """Open balances by days past due as of any day, per customer, collector or currency."""
    data, lag = aging_view(services, as_of, group_by, currency)
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)
    if format == "csv":
        return aging_csv(data, response.headers.get("X-Projection-Lag"))
    return data


def aging_view(services: Any, as_of: date | None, group_by: str, currency: str | None) -> tuple[dict[str, Any], int]:
    """The aging report as `GET /reports/aging` and the console show it (money as wire strings),
    read after its read model caught up; with the events it is still behind (0 when current)."""
    if as_of is not None:
        check_report_day("as_of", as_of)
    lag = services.read_models("aging")
    with services.snapshot() as conn:
        data = money_strings(aging.report(conn, as_of or _today(services), group_by=group_by, currency=currency))
    return data, lag


def aging_csv(data: dict[str, Any], lag: str | None) -> StreamingResponse:
    """The aging report as CSV, as `GET /reports/aging?format=csv` and the console serve it."""
    out = io.StringIO()
    writer = csv.writer(out)
    # Grouped by currency, the group is the currency: one column, not two of the same name.
    keyed = data["group_by"] != "currency"
    key_column = [data["group_by"]] if keyed else []
    # `total` is the principal; `charges` (interest and fees outstanding) is kept apart (docs/charges.md).
    writer.writerow(["as_of", *key_column, "currency", *aging.BUCKET_NAMES, "total", "count", "charges"])
    rows = [*data["groups"]]
    if keyed:
        rows += [{"key": "TOTAL", **t} for t in data["totals"]]
    for group in rows:
        key = [group["key"] or ""] if keyed else []
        writer.writerow(
            [
                data["as_of"],
                *key,
                group["currency"],
                *(b["balance"] for b in group["buckets"]),
                group["balance"],
                group["count"],
                group["charges"],
            ]
        )
    headers = {"Content-Disposition": f'attachment; filename="aging-{data["as_of"]}-{data["group_by"]}.csv"'}
    if lag:
        headers["X-Projection-Lag"] = lag
    return StreamingResponse(iter([out.getvalue()]), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/worklist", response_model=WorklistOut)
def worklist_items(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("worklist.read")],
    response: Response,
    collector: Annotated[str | None, Query(max_length=128, description="Default: the caller, if a collector (who sees only their own); else everyone")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Open items needing action, highest priority first, each with why and what may be done next."""
    data, lag = worklist_view(services, actor, collector, limit)
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)
    return data


def worklist_view(services: Any, actor: Actor, collector: str | None, limit: int) -> tuple[dict[str, Any], int]:
    """The worklist as `GET /worklist` and the console show it (a collector's own by default),
    read after its read model caught up; with the events it is still behind (0 when current)."""
    if actor.role == "collector":
        if collector not in (None, actor.id):  # as with findings: a collector's own work only
            raise invalid_query("collector", "a collector sees only their own worklist", collector)
        collector = actor.id
    lag = services.read_models("worklist", "aftercare")
    now = services.clock.now()
    with services.snapshot() as conn:
        rows = worklist.items_for(conn, collector=collector, now=now, policy=services.app.policy(), limit=limit)
        reasons = aftercare.latest_reasons(conn, [row["id"] for row in rows])
        revisits = aftercare.revisits_due(conn, now=now, collector=collector, limit=limit)
    items = [
        {
            "receivable_id": row["id"],
            "invoice_number": row["invoice_number"],
            "customer_id": row["customer_id"],
            "tier": row["tier"],
            "collector": row["collector"],
            "state": row["state"],
            "currency": row["currency"],
            "balance": format_money(from_minor(row["balance"], row["currency"])),
            "due_on": row["due_on"],
            "days_past_due": row["days_past_due"],
            "priority": row["priority"],
            "reason": row["reasons"][0] if row["reasons"] else "",
            "reasons": row["reasons"],
            "allowed_commands": commands_for(actor.role, lifecycle.allowed_commands(row["state"])),
            "on_hold": row["on_hold"],
            "held_until": row["held_until"],
            "latest_reason": reasons.get(row["id"]),
        }
        for row in rows
    ]
    due = [
        {**{k: r[k] for k in ("customer_id", "receivable_id", "invoice_number", "collector", "owed_on", "last_day")},
         "settled_at": r["settled_at"].replace(tzinfo=UTC)}
        for r in revisits
    ]
    return {"collector": collector, "as_of": now, "items": items, "revisits": due}, lag


@router.get("/reports/kpis", response_model=KpisOut, response_model_by_alias=True)
def kpi_report(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("reports.kpis")],
    response: Response,
    from_: Annotated[Day | None, Query(alias="from", description="First day (default: 30 days before `to`)")] = None,
    to: Annotated[Day | None, Query(description="Last day, included (default: today)")] = None,
    collector: Annotated[str | None, Query(max_length=128)] = None,
) -> Any:
    """DSO, best possible DSO, days delinquent, countback DSO, CEI, promise-kept rate, days to collect: overall and per collector."""
    data, lag = kpi_view(services, from_, to, collector)
    if lag:
        response.headers["X-Projection-Lag"] = str(lag)
    return data


def kpi_view(services: Any, from_: date | None, to: date | None, collector: str | None) -> tuple[dict[str, Any], int]:
    """The KPIs as `GET /reports/kpis` and the console show them (money as wire strings), read after
    their read models caught up; with the events they are still behind (0 when current)."""
    start, end = report_period(services, from_, to)
    lag = services.read_models("kpis", "aging")
    with services.snapshot() as conn:
        report = kpis.compute(conn, start, end, collector=collector)
    return money_strings(report | {"timezone": services.settings.report_timezone, "today": _today(services)}), lag


def kpi_months(
    services: Any, months: list[tuple[date, date]], collector: str | None
) -> tuple[list[dict[str, Any]], int]:
    """The KPIs of each period of `months` (a few calendar months: `kpis.compute` once each, in one
    snapshot, so the months agree), as `kpi_view` gives one; with the events still behind."""
    for start, end in months:
        report_period(services, start, end)  # each bounded and in order, as the API's period
    lag = services.read_models("kpis", "aging")
    with services.snapshot() as conn:
        reports = [money_strings(kpis.compute(conn, start, end, collector=collector)) for start, end in months]
    return reports, lag
