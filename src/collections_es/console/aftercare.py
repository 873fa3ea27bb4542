"""The console's after-collection pages (docs/aftercare.md): why customers do not pay (the
reasons report as a chart and tables, by tier, collector or customer) and the complaints about
the collection with their outcomes. Both read through the API routes' own helpers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ..api.deps import ServicesDep
from ..api.routes.aftercare import complaints_view, reasons_view
from ..api.schemas import RevisitCreate
from ..application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from ..application.service import Idempotency, Request as CommandRequest
from ..domain.errors import RuleViolationError
from . import charts, i18n
from .i18n import N_
from .reports import Figures, day_of
from .web import (
    PREFIX,
    ConsoleRoute,
    ConsoleUser,
    check_csrf,
    console_view,
    flash,
    language_of,
    posted_form,
    render,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

GROUPS: dict[str, str] = {"tier": N_("Tier"), "collector": N_("Collector"), "customer": N_("Customer")}


@router.get(f"{PREFIX}/reports/non-payment-reasons")
def reasons_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("reports.non_payment_reasons")],
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    group_by: Literal["tier", "collector", "customer"] = "tier",
) -> Response:
    """Why customers do not pay: a bar per reason of the vocabulary (contacts and disputes that
    recorded it in the period), then the figures per tier, collector or customer."""
    data, lag = reasons_view(services, day_of("from", from_), day_of("to", to), group_by)
    lang = language_of(request)
    counts = {t["reason"]: t["count"] for t in data["totals"]}
    marks = [
        charts.Mark(code, i18n.gettext(lang, code), Decimal(counts.get(code, 0)), f"{i18n.gettext(lang, code)}: {counts.get(code, 0)}")
        for code in data["vocabulary"]
    ]
    chart = charts.bars(marks, label=i18n.gettext(lang, "Reasons for non-payment"), axis=Figures(lang).axis, name="reason")
    return render(
        request,
        "reasons.html.j2",
        {"data": data, "lag": lag, "chart": chart, "groups": GROUPS, "group_by": group_by,
         "from_": from_ or "", "to": to or ""},
    )


@router.get(f"{PREFIX}/complaints")
def complaints_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("complaints.read")],
    collector: Annotated[str | None, Query(max_length=128)] = None,
    customer_id: Annotated[str | None, Query(max_length=128)] = None,
    open: bool = False,  # noqa: A002 - as the API names it
) -> Response:
    """Complaints about the collection and their outcomes, per collector or customer (a collector: their own)."""
    if user.role == "collector":
        collector = user.actor.id
    rows = complaints_view(services, user.actor, collector=collector or None, customer_id=customer_id or None,
                           open_only=open)
    return render(
        request,
        "complaints.html.j2",
        {"complaints": rows, "collector": collector or "", "customer_id": customer_id or "", "open": open,
         "picks_collector": user.role != "collector", "company_timezone": services.settings.report_timezone},
    )


@router.post(f"{PREFIX}/customers/{{customer_id}}/record-revisit")
def record_revisit(
    customer_id: Annotated[str, Path(max_length=128)],
    request: Request,
    services: ServicesDep,
    form: Annotated[dict[str, str], Depends(posted_form)],
    user: Annotated[ConsoleUser, console_view("customers.revisit")],
) -> Response:
    """A revisit from the worklist's form, recorded as `POST /customers/{id}/record-revisit` records it (now)."""
    check_csrf(user, form)  # before anything is read or recorded
    done = RedirectResponse(f"{PREFIX}/worklist", status_code=303)
    what = i18n.gettext(language_of(request), "Record revisit")
    data = {k: form[k] for k in ("channel", "feedback", "satisfaction", "needs") if form.get(k)}
    try:
        body = RevisitCreate.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        flash(request, user, "error", f"{what}: {errors}")
        return done
    key = form.get("idempotency_key", "")[:MAX_KEY_LENGTH]
    command = CommandRequest(
        actor=user.actor,
        correlation_id=f"console:{uuid.uuid4()}",
        idempotency=Idempotency(f"console:{key}", request_fingerprint("POST", request.url.path, body.model_dump(mode="json"))) if key else None,
    )
    try:
        services.app.record_revisit(command, customer_id, **body.model_dump())
    except RuleViolationError as exc:
        flash(request, user, "error", f"{what}: {exc.detail}", rule_id=exc.rule_id)
        return done
    flash(request, user, "success", i18n.gettext(language_of(request), "Recorded") + f": {what} ({customer_id})")
    return done
