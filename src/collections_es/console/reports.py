"""The console's report pages: aging (buckets by currency, customer or collector, as of any day,
with a chart per currency, the table and the CSV) and KPIs (a period's figures per collector and
overall, and the last twelve months, or a year, month by month with a chart per KPI). Both read
their data through the API routes' own helpers (`aging_view`, `kpi_view`, `kpi_months`)."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from babel.dates import format_skeleton
from babel.numbers import format_compact_decimal, format_decimal, format_percent
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from projections.aging import BUCKET_NAMES

from ..api.deps import ServicesDep
from ..api.routes.aftercare import satisfaction_view
from ..api.routes.reports import _today, aging_csv, aging_view, kpi_months, kpi_view
from . import charts, i18n
from .i18n import N_
from .web import PREFIX, ConsoleRoute, ConsoleUser, console_view, language_of, render, url_with

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: How each aging bucket is named on the page (its key is the API's).
BUCKET_LABELS: dict[str, str] = {
    "current": N_("Not yet due"),
    "1-30": N_("1–30 days"),
    "31-60": N_("31–60 days"),
    "61-90": N_("61–90 days"),
    "91-180": N_("91–180 days"),
    "181-365": N_("181–365 days"),
    "365+": N_("Over 365 days"),
}
#: The bucket under its bar (short: seven share the chart's width).
BUCKET_MARKS: dict[str, str] = {name: name.replace("-", "–") for name in BUCKET_LABELS} | {"current": N_("Not due")}
GROUPS: dict[str, str] = {"currency": N_("Currency"), "customer": N_("Customer"), "collector": N_("Collector")}
GROUP_HEADINGS: dict[str, str] = {"currency": N_("By currency"), "customer": N_("By customer"), "collector": N_("By collector")}

#: The KPIs shown, in order: key of the API's block → name on the page.
KPIS: dict[str, str] = {
    "dso": N_("DSO"),
    "best_possible_dso": N_("Best possible DSO"),
    "average_days_delinquent": N_("Average days delinquent"),
    "countback_dso": N_("Countback DSO"),
    "cei": N_("CEI"),
    "promise_kept_rate": N_("Promise-kept rate"),
    "average_days_to_collect": N_("Days to collect"),
}
#: The KPIs drawn month by month (each a small line chart per collector and currency).
CHARTED: tuple[str, ...] = ("dso", "cei", "average_days_delinquent", "promise_kept_rate")
MONTHS = 12

_CURRENCY = re.compile(r"[A-Z]{3}")


def invalid(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


def day_of(field: str, value: str | None) -> date | None:
    """A day from a form's date input: empty is none; anything but YYYY-MM-DD a 422 page."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be a day (YYYY-MM-DD)", value) from None


def decimal_of(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class Figures:
    """The page's figures in the reader's locale: days, percents, rates and the charts' axes."""

    def __init__(self, lang: str) -> None:
        self.locale = i18n.LOCALES[lang]

    def kpi(self, key: str, value: Any) -> str:
        number = decimal_of(value)
        if number is None:
            return "—"
        if key == "promise_kept_rate":
            return format_percent(number, format="#,##0.0%", locale=self.locale)
        return format_decimal(number, format="#,##0.0", locale=self.locale)

    def axis(self, value: Decimal) -> str:
        if abs(value) >= 1000:
            return format_compact_decimal(value, format_type="short", fraction_digits=1, locale=self.locale)
        return format_decimal(value, format="#,##0.#", locale=self.locale)

    def rate_axis(self, value: Decimal) -> str:
        return format_percent(value, locale=self.locale)


# ---- aging ----------------------------------------------------------------------------------


@router.get(f"{PREFIX}/reports/aging")
def aging_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("reports.aging")],
    as_of: Annotated[str | None, Query(max_length=10)] = None,
    group_by: Literal["currency", "customer", "collector"] = "currency",
    currency: Annotated[str | None, Query(max_length=3)] = None,
    format: Literal["html", "csv"] = "html",  # noqa: A002 - as the API names it
) -> Response:
    """Open balances by days past due as of any day: a chart of the buckets per currency (never
    adding currencies), the table grouped by currency, customer or collector, and the CSV the
    API serves for the same query (`?format=csv`)."""
    day = day_of("as_of", as_of)
    if currency and not _CURRENCY.fullmatch(currency):
        raise invalid("currency", "must be a currency code such as CNY", currency)
    data, lag = aging_view(services, day, group_by, currency or None)
    if format == "csv":
        return aging_csv(data, str(lag) if lag else None)
    lang = language_of(request)
    figures = Figures(lang)
    formats = i18n.Formats(lang)
    charts_ = []
    for total in data["totals"]:
        cur = total["currency"]
        marks = [
            charts.Mark(
                b["bucket"],
                i18n.gettext(lang, BUCKET_MARKS[b["bucket"]]),
                Decimal(b["balance"]),
                f"{i18n.gettext(lang, BUCKET_LABELS[b['bucket']])}: {formats.money(b['balance'], cur)} ({b['count']})",
            )
            for b in total["buckets"]
        ]
        label = f"{i18n.gettext(lang, 'Aging')} · {cur}"
        charts_.append((total, charts.bars(marks, label=label, axis=figures.axis)))
    if currency:  # the choices are every currency on record, not only the one shown
        currencies = [t["currency"] for t in aging_view(services, day, "currency", None)[0]["totals"]]
    else:
        currencies = [t["currency"] for t in data["totals"]]
    return render(
        request,
        "aging.html.j2",
        {
            "data": data,
            "lag": lag,
            "charts": charts_,
            "bucket_names": BUCKET_NAMES,
            "bucket_labels": BUCKET_LABELS,
            "groups": GROUPS,
            "group_heading": GROUP_HEADINGS[group_by],
            "group_by": group_by,
            "currency": currency or "",
            "currencies": sorted(set(currencies) | ({currency} if currency else set())),
            "as_of": data["as_of"],
            "company_timezone": services.settings.report_timezone,
            "csv_url": url_with(request, format="csv", lang=None),
        },
    )


# ---- KPIs -----------------------------------------------------------------------------------


def month_periods(today: date, year: int | None) -> list[tuple[date, date]]:
    """The calendar months to show, oldest first: the twelve to this one, or the months of `year`;
    a month that has not ended is cut at `today`, one that has not begun is left out."""
    if year is None:
        first = date(today.year, today.month, 1)
        starts = []
        for _ in range(MONTHS):
            starts.append(first)
            first = (first - timedelta(days=1)).replace(day=1)
        starts.reverse()
    else:
        starts = [date(year, m, 1) for m in range(1, 13)]
    periods = []
    for start in starts:
        if start > today:
            break
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
        periods.append((start, min(end, today)))
    return periods


@router.get(f"{PREFIX}/reports/kpis")
def kpis_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("reports.kpis")],
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    collector: Annotated[str | None, Query(max_length=128)] = None,
    year: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    """The KPIs of a period (per collector and overall, per currency) as `GET /reports/kpis` gives
    them, and month by month over the last twelve months or a chosen year: a chart per KPI and
    the months' table, per collector and currency."""
    start, end = day_of("from", from_), day_of("to", to)
    chosen_year = None
    if year:
        if not year.isdigit() or not 1970 <= int(year) <= 2199:
            raise invalid("year", "must be a year between 1970 and 2199", year)
        chosen_year = int(year)
    data, lag = kpi_view(services, start, end, collector or None)
    satisfaction, _ = satisfaction_view(services, data["from"], data["to"], collector or None)
    today = _today(services)
    periods = month_periods(today, chosen_year)
    monthly, month_lag = kpi_months(services, periods, collector or None) if periods else ([], 0)
    lang = language_of(request)
    figures = Figures(lang)
    month_names = [format_skeleton("yMMM", first, locale=figures.locale) for first, _ in periods]
    month_labels = [format_skeleton("MMM", first, locale=figures.locale) for first, _ in periods]
    series = []
    for who, cur, months in _named_series(monthly):
        drawn = []
        for key in CHARTED:
            marks = [
                charts.Mark(
                    first.strftime("%Y-%m"),
                    label,
                    decimal_of(block.get(key)) if block else None,
                    f"{full}: {figures.kpi(key, block.get(key) if block else None)}",
                )
                for (first, _), label, full, block in zip(periods, month_labels, month_names, months, strict=True)
            ]
            name = i18n.gettext(lang, KPIS[key])
            axis = figures.rate_axis if key == "promise_kept_rate" else figures.axis
            drawn.append((key, name, charts.line(marks, label=f"{name} · {cur}", axis=axis)))
        rows = [(first.strftime("%Y-%m"), full, block) for (first, _), full, block in zip(periods, month_names, months, strict=True)]
        series.append({"collector": who, "currency": cur, "rows": rows, "charts": drawn})
    collectors = sorted({k.actor for k in services.keys.list() if k.role == "collector" and k.revoked_at is None})
    return render(
        request,
        "kpis.html.j2",
        {
            "data": data,
            "lag": max(lag, month_lag),
            "kpis": KPIS,
            "kpi": figures.kpi,
            "collector": collector or "",
            "collectors": collectors,
            "from_": from_ or "",
            "to": to or "",
            "year": chosen_year,
            "years": list(range(today.year, today.year - 6, -1)),
            "series": series,
            "satisfaction": satisfaction,
        },
    )


def _named_series(reports: list[dict[str, Any]]) -> list[tuple[str | None, str, list[dict[str, Any] | None]]]:
    """(collector — None for everyone —, currency, that block in each month or None): everyone's
    first, per currency, then each collector's (an unassigned receivable's under "")."""
    overall: dict[str, None] = {}
    per_collector: dict[tuple[str, str], None] = {}
    for report in reports:
        for block in report["overall"]:
            overall[block["currency"]] = None
        for block in report["collectors"]:
            per_collector[(block["collector"] or "", block["currency"])] = None
    out: list[tuple[str | None, str, list[dict[str, Any] | None]]] = []
    for cur in sorted(overall):
        out.append((None, cur, [next((b for b in r["overall"] if b["currency"] == cur), None) for r in reports]))
    for who, cur in sorted(per_collector):
        out.append((who, cur, [next((b for b in r["collectors"] if (b["collector"] or "") == who and b["currency"] == cur), None)
                               for r in reports]))
    return out
