"""What every console page shares: the signed-in user (a session), permissions declared
as the API's are, CSRF, the security headers, templates in the reader's language, the
navigation, and error pages in place of problem details (ADR 0040)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from markupsafe import Markup
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from ..api.deps import ServicesDep
from ..application.access import VIEW_ROLES, check_command, check_view
from ..bootstrap import Services
from ..domain.errors import CollectionsError, NotFoundError, PermissionDeniedError
from ..domain.trail import Actor
from . import i18n, reasons
from .i18n import N_
from .sessions import Session, SessionStore

PREFIX = "/console"
COOKIE = "ces_session"
LOGIN_COOKIE = "ces_login"
LANG_COOKIE = "ces_lang"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# ---- navigation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A page of the navigation: shown to the roles its view lets in."""

    path: str
    label: str
    view: str
    #: Whether the running service offers the page at all (the sandbox clock: in sandbox mode only).
    offered: Callable[[Services], bool] | None = None


#: The navigation, in order. Adding a page is one entry here (and its route).
NAV: list[Page] = [
    Page(f"{PREFIX}/worklist", N_("Worklist"), "worklist.read"),
    Page(f"{PREFIX}/reports/aging", N_("Aging"), "reports.aging"),
    Page(f"{PREFIX}/reports/kpis", N_("KPIs"), "reports.kpis"),
    Page(f"{PREFIX}/compliance/findings", N_("Compliance"), "compliance.findings"),
    Page(f"{PREFIX}/reports/non-payment-reasons", N_("Reasons"), "reports.non_payment_reasons"),
    Page(f"{PREFIX}/complaints", N_("Complaints"), "complaints.read"),
    Page(f"{PREFIX}/audit/verify", N_("Audit"), "audit.read"),
    Page(f"{PREFIX}/policy", N_("Policy"), "policy.read"),
    Page(f"{PREFIX}/sandbox/clock", N_("Sandbox clock"), "sandbox.clock", offered=lambda services: services.sandbox is not None),
]


def nav_for(role: str, services: Services | None = None) -> list[Page]:
    """The pages a role may use (of those the service offers, when `services` is given)."""
    return [
        p for p in NAV
        if role in VIEW_ROLES[p.view] and (p.offered is None or services is None or p.offered(services))
    ]


# ---- sessions and the signed-in user ------------------------------------------------


def session_store(request: Request) -> SessionStore:
    return request.app.state.console_sessions


def make_session_store(services: Services, now: Callable[[], Any] | None = None) -> SessionStore:
    settings = services.settings
    options: dict[str, Any] = {"now": now} if now is not None else {}
    return SessionStore(
        services.engine,
        idle=timedelta(minutes=settings.console_idle_minutes),
        lifetime=timedelta(hours=settings.console_max_hours),
        **options,
    )


class SignInRequired(Exception):
    """No live session: the page answers 303 to the sign-in page."""


class CsrfRefused(Exception):
    """A POST without its form's CSRF token, or with another one."""


class TooManyRequests(Exception):
    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


@dataclass(frozen=True)
class ConsoleUser:
    actor: Actor
    session: Session
    key_id: str

    @property
    def role(self) -> str:
        return self.actor.role


def is_https(request: Request, services: Services) -> bool:
    if services.settings.console_trust_proxy:
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded:
            return forwarded == "https"
    return request.url.scheme == "https"


def current_user(request: Request, services: ServicesDep) -> ConsoleUser:
    """The session's holder, once its key is still valid (a revoked key ends the session)
    and within its rate; else 303 to the sign-in page (or 429)."""
    store = session_store(request)
    session = store.find(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    holder = services.keys.identify_digest(session.key_sha256)
    if holder is None or holder.actor != Actor(session.actor, session.role):
        store.close_for_key(session.key_sha256)
        raise SignInRequired()
    if wait := request.app.state.rate_limits.requests.take(holder.key_id):
        raise TooManyRequests(wait)
    user = ConsoleUser(holder.actor, session, holder.key_id)
    request.state.console_user = user
    asked = i18n.language_named(request.query_params.get("lang"))
    if asked is not None and asked != session.lang:
        store.set_lang(session.secret, asked)
    request.state.lang = asked or session.lang or reader_language(request)
    return user


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]


def console_view(view: str) -> Any:
    """The console's `require_view`: the signed-in user once their role may use `view` (else a
    403 page). Carries `.view`, so the route × role test and docs/access.md read it as the API's."""

    def allowed(user: CurrentUser) -> ConsoleUser:
        check_view(user.role, view)
        return user

    allowed.view = view  # type: ignore[attr-defined]
    return Depends(allowed)


def console_command(command: str) -> Any:
    """As `console_view`, for a lifecycle command."""

    def allowed(user: CurrentUser) -> ConsoleUser:
        check_command(user.role, command)
        return user

    allowed.command = command  # type: ignore[attr-defined]
    return Depends(allowed)


def reader_language(request: Request) -> str:
    """For a reader without a session: `?lang=`, the language cookie, Accept-Language, zh-CN."""
    return (
        i18n.language_named(request.query_params.get("lang"))
        or i18n.language_named(request.cookies.get(LANG_COOKIE))
        or i18n.negotiate(request.headers.get("accept-language"))
        or i18n.DEFAULT_LANGUAGE
    )


async def posted_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the console's forms post nothing else)."""
    body = await request.body()
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise CsrfRefused() from None


def check_csrf(user: ConsoleUser, form: dict[str, str]) -> None:
    if not user.session.is_csrf_token(form.get("csrf")):
        raise CsrfRefused()


def flash(request: Request, user: ConsoleUser, kind: str, text: str, **extra: Any) -> None:
    """A message for the next page this user sees (after a redirect)."""
    session_store(request).set_flash(user.session.secret, {"kind": kind, "text": text, **extra})


# ---- templates ----------------------------------------------------------------------------


def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,  # every page is HTML: free text is escaped, always
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.TRANSLATIONS[lang], newstyle=True)  # type: ignore[attr-defined]
    formats = i18n.Formats(lang)
    env.filters["money"] = formats.money
    env.filters["day"] = formats.day
    env.filters["instant"] = formats.instant
    env.filters["number"] = formats.number
    env.filters["urlquote"] = lambda value: quote(str(value), safe="")
    env.filters["reason"] = lambda text: reasons.reason(text, lang)
    env.globals["options"] = functools.lru_cache(maxsize=256)(lambda choices: _options(lang, choices))
    env.globals["static"] = static_url
    return env


def _options(lang: str, choices: tuple[str, ...]) -> Markup:
    """A select's options, translated once per language (a worklist page has hundreds of selects)."""
    return Markup("").join(
        Markup('<option value="{}">{}</option>').format(choice, i18n.gettext(lang, choice)) for choice in choices
    )


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    """The templates in one language (built once, on first use)."""
    return _environment(lang)


def url_with(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query_params.items() if k not in changes}
    query |= {k: v for k, v in changes.items() if v is not None}
    return request.url.path + ("?" + urlencode(query) if query else "")


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> HTMLResponse:
    """A page in the reader's language, with the layout's navigation, user, language switch
    and the flash message left by the previous request (shown once)."""
    user: ConsoleUser | None = getattr(request.state, "console_user", None)
    lang = language_of(request)
    message = None
    if user is not None and user.session.flash:
        message = user.session.flash
        session_store(request).set_flash(user.session.secret, None)
    page = {
        "user": user,
        "nav": nav_for(user.role, request.app.state.services) if user else [],
        "csrf": user.session.csrf_token if user else "",
        "lang": lang,
        "languages": [(code, i18n.LANGUAGE_NAMES[code], url_with(request, lang=code)) for code in i18n.LANGUAGES],
        "path": request.url.path,
        "flash": message,
        "may_read_receivables": user is not None and user.role in VIEW_ROLES["receivables.read"],
    }
    html = environment(lang).get_template(template).render(page | (context or {}))
    return HTMLResponse(html, status_code=status)


def language_of(request: Request) -> str:
    return getattr(request.state, "lang", None) or reader_language(request)


def error_page(request: Request, status: int, title: str, detail: str, reason: str | None = None) -> HTMLResponse:
    """An error page: `title` and `detail` are messages of the catalog (translated here, never
    free text: a translated message is markup); `reason` is free text, shown escaped."""
    lang = language_of(request)
    context = {"status": status, "title": i18n.gettext(lang, title), "detail": i18n.gettext(lang, detail), "reason": reason}
    return render(request, "error.html.j2", context, status=status)


# ---- static files -------------------------------------------------------------------------

STATIC = resources.files(__package__).joinpath("static")
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
               ".txt": "text/plain; charset=utf-8"}
_STATIC_FILES = {f.name: f for f in STATIC.iterdir() if f.is_file() and not f.name.startswith(".")}
_VERSIONS = {name: hashlib.sha256(f.read_bytes()).hexdigest()[:12] for name, f in _STATIC_FILES.items()}


def static_url(name: str) -> str:
    """A static file's URL, with its content's digest so a changed file is fetched anew."""
    return f"{PREFIX}/static/{name}?v={_VERSIONS[name]}"


def static_file(name: str) -> Response:
    found = _STATIC_FILES.get(name)
    if found is None:
        raise NotFoundError(f"no static file {name}")
    suffix = name[name.rfind(".") :]
    return Response(
        found.read_bytes(),
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=86400"},
    )


# ---- the route class: security headers and HTML error pages ------------------------------


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        if name in ("Cache-Control", "Content-Security-Policy") and name.lower() in response.headers:
            continue  # a response that set its own (a static file's caching, a letter's narrower policy)
        response.headers[name] = value
    return response


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?" + urlencode({"next": target}), status_code=303)


class ConsoleRoute(APIRoute):
    """A console route: every response carries the security headers, and a failure is an HTML
    page in the reader's language (or the redirect to sign in), never problem details."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = sign_in_redirect(request)
            except TooManyRequests as exc:
                response = error_page(request, 429, N_("Too many requests"), N_("Please wait a moment and try again."))
                response.headers["Retry-After"] = str(exc.wait)
            except CsrfRefused:
                response = error_page(
                    request, 403, N_("Forbidden"), N_("The form was stale or did not come from this console; nothing was recorded. Go back, reload the page and try again.")
                )
            except PermissionDeniedError as exc:
                response = error_page(request, 403, N_("Forbidden"), N_("Your role may not see this page."), reason=str(exc))
            except NotFoundError as exc:
                response = error_page(request, 404, N_("Not found"), N_("There is no such page or record."), reason=str(exc))
            except RequestValidationError as exc:
                errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
                response = error_page(request, 422, N_("Invalid request"), N_("A value in the address is not valid."), reason=errors)
            except CollectionsError as exc:
                response = error_page(request, 422, N_("Refused"), N_("The service refused the request."), reason=str(exc))
            return secure(response)

        return handle


def new_nonce() -> str:
    return secrets.token_urlsafe(24)
