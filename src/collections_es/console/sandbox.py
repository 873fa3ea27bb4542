"""The sandbox clock page (sandbox mode only, as the API's routes): the clock's now, and a form
to move it forward to an instant, firing every timer due on the way (`Scheduler.advance`, as
`POST /sandbox/clock/advance`); what fired is listed after the move."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ..api.deps import ServicesDep
from ..application.clock import ClockError
from ..domain.errors import NotFoundError
from . import i18n
from .i18n import N_
from .web import PREFIX, ConsoleRoute, ConsoleUser, check_csrf, console_view, flash, language_of, posted_form, render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Form = Annotated[dict[str, str], Depends(posted_form)]
#: At most this many timers fired are listed after a move (the count says how many in all).
SHOWN_FIRED = 50
PAGE = f"{PREFIX}/sandbox/clock"


def _sandbox(services: Any) -> Any:
    if services.sandbox is None:
        raise NotFoundError("not in sandbox mode")
    return services.sandbox


def _local_input(at: datetime, zone: str) -> str:
    """An instant as a datetime-local input's value in `zone`."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


@router.get(PAGE)
def clock_page(request: Request, services: ServicesDep, user: Annotated[ConsoleUser, console_view("sandbox.clock")]) -> Response:
    """The sandbox clock's now, and the form to advance it."""
    now = _sandbox(services).now()
    zone = services.settings.report_timezone
    moved = user.session.flash or {}  # the move just made, if the flash is its (render shows and clears it)
    fired = None
    if "fired" in moved:
        fired = [
            f | {"scheduled_for": datetime.fromisoformat(f["scheduled_for"]), "fired_at": datetime.fromisoformat(f["fired_at"])}
            for f in moved["fired"]
        ]
    return render(
        request,
        "sandbox.html.j2",
        {
            "now": now,
            "zone": zone,
            "suggested": _local_input(now + timedelta(days=1), zone),
            "fired": fired,
            "fired_count": moved.get("fired_count", 0),
        },
    )


def _parse(value: str, zone: str) -> datetime | None:
    """A datetime-local value in the company's zone, or an instant with its own zone."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(zone))


@router.post(f"{PAGE}/advance")
def advance(request: Request, services: ServicesDep, form: Form, user: Annotated[ConsoleUser, console_view("sandbox.clock")]) -> Response:
    """Move the sandbox clock forward to the posted instant (never back), firing each timer due on
    the way at its own instant; back to the clock's page with what fired."""
    check_csrf(user, form)  # before anything is read or moved
    clock = _sandbox(services)
    lang = language_of(request)
    done = RedirectResponse(PAGE, status_code=303)
    zone = services.settings.report_timezone
    to = _parse(form.get("to", ""), zone)
    if to is None:
        flash(request, user, "error", i18n.gettext(lang, N_("Give the instant to move the clock to.")))
        return done
    try:
        fired = services.scheduler.advance(clock, to)
    except ClockError as exc:
        flash(request, user, "error", str(exc))
        return done
    shown = [
        {**f.as_dict(), "scheduled_for": f.scheduled_for.isoformat(), "fired_at": f.fired_at.isoformat()}
        for f in fired[:SHOWN_FIRED]
    ]
    text = i18n.gettext(lang, N_("The clock was moved; timers fired:")) + f" {len(fired)}"
    flash(request, user, "success", text, fired=shown, fired_count=len(fired))
    return done
