"""The console's routes: sign-in, the worklist, the receivable page, its letters and one
POST route per lifecycle command (from the declaration, as the API's)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from projections.contacts import read_contacts

from ..api import present
from ..api.deps import ServicesDep
from ..api.routes.letters import letter_response
from ..api.routes.receivables import as_of_instant
from ..api.routes.reports import worklist_view
from ..application.access import PII_ROLES, ROLES, VIEW_ROLES, commands_for
from ..application.audit import verify_chain
from ..application.commands import LIFECYCLE, Command
from ..application.fields import DayOrInstant
from ..application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from ..application.service import Idempotency, Override, Request as CommandRequest
from ..domain import lifecycle
from ..domain.errors import (
    CommandNotAllowedError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PermissionDeniedError,
    RuleViolationError,
    VersionMismatchError,
)
from ..domain.policy import CHANNELS
from ..letters import FORMATS, KINDS, LANGUAGES as LETTER_LANGUAGES, STAGES
from . import diagram, forms, i18n
from .audit import evidence_link
from .i18n import N_
from .web import (
    COOKIE,
    LANG_COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    ConsoleRoute,
    ConsoleUser,
    CsrfRefused,
    SignInRequired,
    console_command,
    console_view,
    check_csrf,
    current_user,
    error_page,
    flash,
    is_https,
    language_of,
    nav_for,
    new_nonce,
    posted_form,
    reader_language,
    render,
    session_store,
    static_file,
    url_with,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: Console routes anyone may reach: they sign in, out, or serve the stylesheet (the others
#: declare their permission with `console_view` / `console_command`).
PUBLIC_PATHS: frozenset[str] = frozenset(
    {"/", f"{PREFIX}/", f"{PREFIX}/login", f"{PREFIX}/logout", f"{PREFIX}/static/{{name}}"}
)

ReceivableRef = Annotated[str, Path(max_length=128)]
#: Items on one page of the worklist, and how far its pages go (the API's own limit).
WORKLIST_PAGE = 50
WORKLIST_LIMIT = 1000
Form = Annotated[dict[str, str], Depends(posted_form)]
_DAY_OR_INSTANT = TypeAdapter(DayOrInstant)


def _safe_next(target: str | None, default: str) -> str:
    """Only a path of the console: never another site (an open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


# ---- the way in ---------------------------------------------------------------------------


@router.get("/")
def root() -> RedirectResponse:
    """The console is the first thing a person sees."""
    return RedirectResponse(f"{PREFIX}/", status_code=303)


@router.get(f"{PREFIX}/")
def home(request: Request, services: ServicesDep) -> Response:
    """The console's home: the worklist for those who have one, else a page to find a receivable."""
    try:
        user = current_user(request, services)
    except SignInRequired:
        return RedirectResponse(f"{PREFIX}/login", status_code=303)
    worklist = [p for p in nav_for(user.role, services) if p.view == "worklist.read"]
    if worklist:
        return RedirectResponse(worklist[0].path, status_code=303)
    return render(request, "home.html.j2")


@router.get(f"{PREFIX}/static/{{name}}")
def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    """The stylesheet (and any other file of the package's static folder)."""
    return static_file(name)


def _login_form(request: Request, *, error: str | None = None, status: int = 200, next_: str | None = None) -> Response:
    nonce = new_nonce()
    lang = reader_language(request)
    request.state.lang = lang
    response = render(
        request,
        "login.html.j2",
        {"login_csrf": nonce, "error": i18n.gettext(lang, error) if error else None,
         "next": _safe_next(next_ or request.query_params.get("next"), "")},
        status=status,
    )
    secure = is_https(request, request.app.state.services)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=secure, path=f"{PREFIX}/login", max_age=3600)
    if (asked := i18n.language_named(request.query_params.get("lang"))) is not None:
        response.set_cookie(LANG_COOKIE, asked, httponly=True, samesite="lax", secure=secure, path=PREFIX, max_age=365 * 86400)
    return response


@router.get(f"{PREFIX}/login")
def login_form(request: Request) -> Response:
    """The sign-in form: an API key (made with `collections-es keys add`)."""
    return _login_form(request)


@router.post(f"{PREFIX}/login")
def login(request: Request, services: ServicesDep, form: Form) -> Response:
    """Sign in with an API key (form field `token`): a session, and 303 to the console."""
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not hmac.compare_digest(nonce.encode(), form.get("csrf", "").encode()):
        raise CsrfRefused()
    next_ = form.get("next")
    limits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    if wait := limits.failures.wait(address):
        response = _login_form(request, error=N_("Too many wrong keys from your address; wait a minute and try again."), status=429, next_=next_)
        response.headers["Retry-After"] = str(wait)
        return response
    token = form.get("token", "").strip()
    holder = services.keys.identify(token) if token and len(token) <= 256 else None
    if holder is None:
        limits.failures.take(address)
        return _login_form(request, error=N_("This key is not valid, or it was revoked."), status=401, next_=next_)
    from ..adapters.api_keys import token_digest

    lang = i18n.language_named(request.cookies.get(LANG_COOKIE))  # a choice made on the sign-in page, if any
    session = session_store(request).open(token_digest(token), holder.actor.id, holder.actor.role, lang)
    response = RedirectResponse(_safe_next(next_, f"{PREFIX}/"), status_code=303)
    response.set_cookie(
        COOKIE, session.secret, httponly=True, samesite="lax", secure=is_https(request, services), path=PREFIX,
    )
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post(f"{PREFIX}/logout")
def logout(request: Request, services: ServicesDep, form: Form) -> Response:
    """Sign out: the session ends (its CSRF token required, so no other site can sign you out)."""
    store = session_store(request)
    session = store.find(request.cookies.get(COOKIE))
    if session is not None:
        if not session.is_csrf_token(form.get("csrf")):
            raise CsrfRefused()
        store.close(session.secret)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# ---- the worklist -------------------------------------------------------------------------


@router.get(f"{PREFIX}/worklist")
def worklist(
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("worklist.read")],
    collector: Annotated[str | None, Query(max_length=128)] = None,
    check: Annotated[str | None, Query(max_length=128, description="A receivable whose contact check to show")] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=WORKLIST_LIMIT // WORKLIST_PAGE)] = 1,
) -> Response:
    """A collector's prioritised items (a supervisor or legal picks the collector), with the
    contact check for a chosen channel and quick forms to log a contact, a promise, a payment."""
    if user.role == "collector":
        collector = user.actor.id
    data, lag = worklist_view(services, user.actor, collector or None, page * WORKLIST_PAGE + 1)
    more = len(data["items"]) > page * WORKLIST_PAGE
    data["items"] = data["items"][(page - 1) * WORKLIST_PAGE : page * WORKLIST_PAGE]
    checked = None
    if check and channel in CHANNELS:
        result = services.app.contact_check(user.actor, present.resolve_id(check), channel=channel)
        checked = {"receivable_id": str(present.resolve_id(check)), "result": present.contact_check(result)}
    collectors = sorted({k.actor for k in services.keys.list() if k.role == "collector" and k.revoked_at is None})
    quick = [LIFECYCLE[c] for c in ("record_contact", "promise_to_pay", "record_payment")]
    return render(
        request,
        "worklist.html.j2",
        {
            "data": data,
            "lag": lag,
            "collector": collector or "",
            "collectors": collectors,
            "picks_collector": user.role != "collector",
            "checked": checked,
            "channels": tuple(CHANNELS),
            "channel": channel or "phone",
            # The quick forms take the required fields (the receivable's page has every field).
            "quick": [(c, [i for i in forms.inputs(c) if i.required]) for c in quick],
            "page": page,
            "back": url_with(request, check=None, channel=None, lang=None),
            "first_rank": (page - 1) * WORKLIST_PAGE,
            "previous_page": url_with(request, page=page - 1 if page > 2 else None, check=None, channel=None) if page > 1 else None,
            "next_page": url_with(request, page=page + 1, check=None, channel=None) if more else None,
            "may_check": user.role in VIEW_ROLES["receivables.contact_check"],
            "may_revisit": user.role in VIEW_ROLES["customers.revisit"],
            "company_timezone": services.settings.report_timezone,
            "idempotency_key": new_nonce,
        },
    )


# ---- a receivable -------------------------------------------------------------------------


@router.get(f"{PREFIX}/receivables")
def find_receivable(
    user: Annotated[ConsoleUser, console_view("receivables.read")],
    ref: Annotated[str, Query(min_length=1, max_length=128, description="An id or an invoice number")],
) -> Response:
    """Go to a receivable by its id or invoice number."""
    from urllib.parse import quote

    return RedirectResponse(f"{PREFIX}/receivables/{quote(ref.strip(), safe='')}", status_code=303)


def _as_of(services: Any, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = _DAY_OR_INSTANT.validate_python(value)
    except ValidationError:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "as_of"), "msg": "must be a day (YYYY-MM-DD) or an instant with its zone", "input": value}]
        ) from None
    return as_of_instant(services, parsed)


@router.get(f"{PREFIX}/receivables/{{receivable_ref}}")
def receivable(
    receivable_ref: ReceivableRef,
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("receivables.read")],
    as_of: Annotated[str | None, Query(max_length=64)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """A receivable: its figures, lifecycle, timeline with the chain's verification, letters,
    contacts and the actions the role may take now; `?as_of=` or `?version=` as it was then."""
    rid = present.resolve_id(receivable_ref)
    app = services.app
    instant = _as_of(services, as_of)
    if instant is not None and version is not None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "as_of"), "msg": "give as_of or version, not both", "input": as_of}]
        )
    events = list(app.history(rid))  # 404 for an unknown receivable
    if instant is not None:
        r = app.get_receivable_as_of(rid, instant)
        now = instant
    elif version is not None:
        r = app.get_receivable(rid, version=version)
        now = events[version - 1].timestamp
    else:
        r = app.get_receivable(rid)
        now = services.clock.now()
    past = instant is not None or version is not None
    redactor = present.redactor_unless_pii(user.role, app, r.customer_id)
    public = present.receivable(r, now, app.policy(), as_of=now if past else None, redactor=redactor)
    links = {link.version: link for link in verify_chain(events)}
    timeline = [(present.history_entry(e, redactor), links[e.originator_version]) for e in events]
    lang = language_of(request)
    label = lambda name: i18n.gettext(lang, name)  # noqa: E731 - states and commands are catalog messages
    try:
        customer = app.get_customer(r.customer_id)
    except NotFoundError:
        customer = None
    return render(
        request,
        "receivable.html.j2",
        {
            "ref": receivable_ref,
            "r": public,
            "timezone": r.timezone,
            "customer_name": customer.name if customer else None,
            # The customer's revisits after collection (its file keeps the latest 20), masked as the API masks them.
            "revisits": present.customer(customer, show_pii=user.role in PII_ROLES).revisits if customer else [],
            "past": past,
            "as_of": as_of or "",
            "version": r.version,
            "latest_version": len(events),
            "timeline": timeline,
            "chain_ok": all(link.ok for link in links.values()),
            "diagram": diagram.render(r.state, label),
            "contacts": _contacts(services, user, rid, r.customer_id, now if past else None, redactor),
            "letters": [] if past else _letters(user, r, now),
            "letter_formats": [f for f in FORMATS if f in ("html", "pdf")],
            "letter_languages": LETTER_LANGUAGES,
            "actions": [] if past else _actions(user, r.state, answers_proposal=_proposal_waits(r)),
            "evidence": not past and evidence_link(request, user),
            "is_supervisor": user.role == "supervisor",
            "idempotency_key": new_nonce,
        },
    )


def _contacts(services: Any, user: ConsoleUser, rid: uuid.UUID, customer_id: str, until: datetime | None, redactor: Any) -> list[dict[str, Any]]:
    """The receivable's contacts log, as `GET /receivables/{id}/contacts-log` gives it (up to `until`)."""
    if user.role not in VIEW_ROLES["contacts.read"]:
        return []
    services.read_models("contacts_log")
    with services.snapshot() as conn:
        rows = read_contacts(conn, receivable_id=str(rid), limit=500)
    rows = [present.contact_entry(row, redactor) | {"occurred_at": _aware(row["occurred_at"])} for row in rows]
    if until is not None:
        rows = [row for row in rows if row["occurred_at"] <= until]
    return rows


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _letters(user: ConsoleUser, r: Any, now: datetime) -> list[str]:
    """The letters this role may read that the receivable's stage allows now."""
    if user.role not in VIEW_ROLES["letters.read"]:
        return []
    return [kind for kind in KINDS if STAGES[kind].admits(r.state, r.days_past_due(now))]


#: Commands that answer a customer's proposal (portal): offered only while one waits.
PROPOSAL_ANSWERS = frozenset({"accept_installment_proposal", "decline_installment_proposal"})


def _proposal_waits(r: Any) -> bool:
    return r.installment_proposal is not None and r.installment_proposal["status"] == "pending"


def _actions(user: ConsoleUser, state: str, *, answers_proposal: bool = True) -> list[tuple[Command, list[forms.Input]]]:
    """Each command the role may send in this state, with its form's inputs (the answers to a
    customer's proposal only while one waits)."""
    return [
        (LIFECYCLE[c], forms.inputs(LIFECYCLE[c]))
        for c in commands_for(user.role, lifecycle.allowed_commands(state))
        if answers_proposal or c not in PROPOSAL_ANSWERS
    ]


@router.get(f"{PREFIX}/receivables/{{receivable_ref}}/letters/{{kind}}")
def letter(
    receivable_ref: ReceivableRef,
    kind: Annotated[str, Path(max_length=32)],
    request: Request,
    services: ServicesDep,
    user: Annotated[ConsoleUser, console_view("letters.read")],
    language: Annotated[str, Query(max_length=8)] = "zh-CN",
    format: Annotated[str, Query(max_length=8)] = "html",  # noqa: A002 - as the API names it
) -> Response:
    """A letter to preview (HTML) or download (PDF), as `GET /receivables/{id}/letters/{kind}` serves it."""
    if kind not in KINDS or language not in LETTER_LANGUAGES or format not in ("html", "pdf"):
        raise NotFoundError(f"no letter {kind} in {language} as {format}")
    r = services.app.get_receivable(present.resolve_id(receivable_ref))
    response = letter_response(services, r, kind, language, format)
    if format == "pdf" and response.status_code == 200:
        response.headers["Content-Disposition"] = response.headers["Content-Disposition"].replace("inline", "attachment", 1)
    if format == "html" and response.status_code == 200:
        response.headers["Content-Security-Policy"] = letter_policy(response.body)
    if response.status_code != 200:  # not at the letter's stage (409), or no PDF font (503)
        detail = json.loads(response.body)["detail"]
        return error_page(request, response.status_code, N_("Refused"), N_("This letter cannot be produced now."), reason=detail)
    return response


def letter_policy(html: bytes) -> str:
    """A letter is a document for the customer, not a console page: it may keep the style
    sheet its template holds (allowed by its hash, never 'unsafe-inline'), and nothing else
    (no script, no form; sandboxed)."""
    styles = re.findall(rb"<style>(.*?)</style>", html, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in styles)
    return (
        f"default-src 'none'; style-src {hashes or chr(39) + 'none' + chr(39)}; img-src 'self' data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox"
    )


# ---- commands -----------------------------------------------------------------------------


def _command_route(command: Command) -> None:
    # A default, not an annotation: annotations are strings here (postponed), and a
    # string cannot name this closure's command.
    permitted = console_command(command.name)

    def run(
        receivable_ref: ReceivableRef,
        request: Request,
        services: ServicesDep,
        form: Form,
        user: ConsoleUser = permitted,
    ) -> Response:
        check_csrf(user, form)  # before anything is read or recorded
        rid = present.resolve_id(receivable_ref)
        current = services.app.get_receivable(rid)
        back = _safe_next(form.get("next"), f"{PREFIX}/receivables/{receivable_ref}")
        done = RedirectResponse(back, status_code=303)
        lang = language_of(request)
        what = i18n.gettext(lang, command.name)
        try:
            body = command.body.model_validate(forms.body_data(command, form, current.timezone))
        except forms.FormError as exc:
            flash(request, user, "error", f"{what}: {exc}")
            return done
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
            flash(request, user, "error", f"{what}: {errors}")
            return done
        if body.override is not None and user.role != "supervisor":
            raise PermissionDeniedError("only a supervisor may override a rule")
        fields = body.model_dump(exclude={"override"})
        key = form.get("idempotency_key", "")[:MAX_KEY_LENGTH]
        expected = form.get("version", "")
        command_request = CommandRequest(
            actor=user.actor,
            correlation_id=f"console:{uuid.uuid4()}",
            idempotency=Idempotency(f"console:{key}", request_fingerprint("POST", request.url.path, body.model_dump(mode="json"))) if key else None,
            expected_version=int(expected) if expected.isdigit() and len(expected) < 10 else None,
            override=Override(body.override.rule_id, body.override.reason) if body.override else None,
        )
        try:
            outcome = services.app.execute(command_request, rid, command.name, **fields)
        except RuleViolationError as exc:
            flash(request, user, "error", f"{what}: {exc.detail}", rule_id=exc.rule_id)
            return done
        except CommandNotAllowedError as exc:
            flash(request, user, "error", f"{what}: {exc}", state=exc.state)
            return done
        except VersionMismatchError:
            flash(request, user, "error", i18n.gettext(lang, "The receivable changed since the page was shown; nothing was recorded. Look again and retry."))
            return done
        except IdempotencyKeyReusedError as exc:
            flash(request, user, "error", str(exc))
            return done
        findings = [f"{f.rule_id}: {f.detail}" for f in outcome.resource.last_contact_findings()] if command.name == "record_contact" else []
        text = i18n.gettext(lang, "Recorded") + f": {what} ({outcome.resource.invoice_number})"
        if outcome.replayed:
            text += " — " + i18n.gettext(lang, "already recorded by the same form")
        flash(request, user, "warning" if findings else "success", text, findings=findings)
        return done

    run.__doc__ = f"Lifecycle command `{command.name}` from a console form: {command.summary}."
    run.__name__ = f"console_{command.name}"
    router.add_api_route(f"{PREFIX}/receivables/{{receivable_ref}}/{command.path}", run, methods=["POST"], name=f"console_{command.name}")


for _declared in LIFECYCLE.values():
    if _declared.roles & set(ROLES):  # not those only the customer sends, from the portal (docs/portal.md)
        _command_route(_declared)

