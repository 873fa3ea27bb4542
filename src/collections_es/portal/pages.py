"""The customer's own page, `/portal/<token>`, and its forms (docs/portal.md; ADRs 0055, 0056).

The token is the only credential: it names one customer (`links`), whose open receivables the
page shows with their balances, promises, plans, proposals, disputes, the letters and messages
delivered, and how to pay (bank transfer with a QR code of the details, Alipay, WeChat Pay).
Its forms send the lifecycle commands the declaration (`application.commands`) gives the
`customer` role, as the actor `customer:<id>`, through the same application service as the API
and the console; the service refuses a receivable of anyone else as unknown, and so does the
page, before it. An altered, expired or revoked link is a 404 page saying what to do.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import segno
from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from projections.receivables import list_receivables

from ..api.deps import ServicesDep
from ..api.rate_limit import TokenBuckets
from ..application.access import commands_for
from ..application.commands import LIFECYCLE, Command
from ..application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from ..application.service import Idempotency, Request as CommandRequest
from ..bootstrap import Services
from ..console import forms
from ..console import web
from ..console.web import posted_form, secure
from ..domain import lifecycle
from ..domain.errors import (
    CollectionsError,
    CommandNotAllowedError,
    IdempotencyKeyReusedError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from ..domain.money import format_money
from ..domain.receivable import Receivable
from ..domain.trail import CUSTOMER_ROLE, customer_actor
from . import i18n
from .links import Link

PREFIX = "/portal"
CSRF_COOKIE = "ces_portal"
#: The commands a customer may send (from the declaration), in its order.
CUSTOMER_COMMANDS: list[Command] = [c for c in LIFECYCLE.values() if CUSTOMER_ROLE in c.roles]
#: Open receivables shown on one page (a customer with more sees the first, oldest due first).
MAX_RECEIVABLES = 100

TokenPath = Annotated[str, Path(min_length=1, max_length=512)]
ReceivableRef = Annotated[str, Path(min_length=1, max_length=128)]

# ---- failures: pages, never problem details -----------------------------------------------


class LinkRefused(Exception):
    """The token is altered, expired or revoked (all alike: 404)."""


class TooManyRequests(Exception):
    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


class CsrfRefused(Exception):
    """A form without the token this link's page gave it."""


class PortalRoute(APIRoute):
    """A portal route: the console's security headers, and failures as pages in the reader's language."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except LinkRefused:
                response = message_page(request, 404, i18n.N_("This link does not work"), i18n.N_(
                    "The link may have expired, been replaced by a newer one, or been copied incompletely. "
                    "Ask your contact at our company for a new link, or call us."))
            except NotFoundError:
                response = message_page(request, 404, i18n.N_("Not found"), i18n.N_(
                    "There is no such invoice on your page. Go back to your page and choose one of those it lists."))
            except TooManyRequests as exc:
                response = message_page(request, 429, i18n.N_("Too many requests"), i18n.N_("Please wait a minute and try again."))
                response.headers["Retry-After"] = str(exc.wait)
            except (CsrfRefused, web.CsrfRefused):  # the console's, for a body that is not a form
                response = message_page(request, 403, i18n.N_("The form has expired"), i18n.N_(
                    "Nothing was recorded. Go back, reload your page and send the form again."))
            except RequestValidationError:
                response = message_page(request, 404, i18n.N_("Not found"), i18n.N_(
                    "There is no such invoice on your page. Go back to your page and choose one of those it lists."))
            response = secure(response)
            response.headers["Referrer-Policy"] = "no-referrer"  # the link is a credential: never sent on
            return response

        return handle


router = APIRouter(route_class=PortalRoute, include_in_schema=False)

# ---- the link, its rate and its language ---------------------------------------------------


def _limits(request: Request, services: Services) -> TokenBuckets:
    limits = getattr(request.app.state, "portal_limits", None)
    if limits is None:
        settings = services.settings
        limits = request.app.state.portal_limits = TokenBuckets(settings.portal_requests_per_minute, settings.portal_burst)
    return limits


def portal_link(token: TokenPath, request: Request, services: ServicesDep) -> Link:
    """The link the token stands for, within its rate; else a 404 (or 429) page. A client that
    sends many bad tokens is slowed down as one sending bad API keys is (ADR 0031)."""
    request.state.lang = reader_language(request)
    failures = request.app.state.rate_limits.failures
    address = request.client.host if request.client else "unknown"
    if wait := failures.wait(address):
        raise TooManyRequests(wait)
    assert services.portal is not None
    link = services.portal.read(token, services.clock.now())
    if link is None:
        failures.take(address)
        raise LinkRefused()
    if wait := _limits(request, services).take(link.key):
        raise TooManyRequests(wait)
    return link


PortalLink = Annotated[Link, Depends(portal_link)]


def reader_language(request: Request) -> str:
    return (
        i18n.language_named(request.query_params.get("lang"))
        or i18n.negotiate(request.headers.get("accept-language"))
        or i18n.DEFAULT_LANGUAGE
    )


def language_of(request: Request) -> str:
    return getattr(request.state, "lang", None) or reader_language(request)


def _csrf(services: Services, link: Link, nonce: str) -> str:
    assert services.portal is not None
    return services.portal.csrf(link, nonce)


# ---- the page -----------------------------------------------------------------------------


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    lang = language_of(request)
    page = {
        "lang": lang,
        "languages": [(code, i18n.LANGUAGE_NAMES[code], _with_lang(request, code)) for code in i18n.LANGUAGES],
    }
    html = i18n.environment(lang).get_template(template).render(page | context)
    return HTMLResponse(html, status_code=status)


def _with_lang(request: Request, lang: str) -> str:
    """The customer's page (`/portal/<token>`) in another language; nothing else of the address
    it was asked with is repeated."""
    return "/".join(request.url.path.split("/")[:3]) + "?" + urlencode({"lang": lang})


def message_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    lang = language_of(request)
    services = request.app.state.services
    company = services.letters.company
    return render(request, "message.html.j2", {
        "status": status, "title": i18n.gettext(lang, title), "detail": i18n.gettext(lang, detail),
        "company": _company_name(company, lang), "phone": company.get("phone", ""),
    }, status=status)


def _company_name(company: dict[str, Any], lang: str) -> str:
    return (company.get("name_en") if lang == "en" else None) or company["name"]


@router.get(f"{PREFIX}/static/{{name}}")
def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    """The portal's stylesheet."""
    return i18n.static_file(name)


@router.get(f"{PREFIX}/{{token}}")
def page(request: Request, services: ServicesDep, link: PortalLink) -> Response:
    """The customer's page: what they owe, what they promised or proposed, how to pay, and forms."""
    done = request.query_params.get("done")
    notice = done if done in {c.name for c in CUSTOMER_COMMANDS} else None
    return _page(request, services, link, notice=notice)


def _page(
    request: Request,
    services: Services,
    link: Link,
    *,
    status: int = 200,
    notice: str | None = None,
    error: dict[str, Any] | None = None,
) -> Response:
    app = services.app
    customer = app.get_customer(link.customer_id)
    now = services.clock.now()
    policy = app.policy()
    company = services.letters.company
    lang = language_of(request)
    receivables = [_receivable_view(services, r, now, policy, company) for r in _open_receivables(services, link.customer_id)]
    nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    wallets = [
        {"method": method, "account": found.get("account", ""), "qr": _qr(found["qr"]) if found.get("qr") else None}
        for method in ("alipay", "wechat_pay")
        if (found := company.get("portal", {}).get(method))
    ]
    response = render(request, "portal.html.j2", {
        "token": link.token,
        "customer": customer,
        "company": _company_name(company, lang),
        "phone": company.get("phone", ""),
        "receivables": receivables,
        "wallets": wallets,
        "expires_at": link.expires_at,
        "csrf": _csrf(services, link, nonce),
        "idempotency_key": lambda: secrets.token_urlsafe(16),
        "notice": notice,
        "error": error,
        "lang_query": urlencode({"lang": lang}),
    }, status=status)
    secure_cookie = web.is_https(request, services)  # behind a proxy as the console judges it
    response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict", secure=secure_cookie, path=PREFIX)
    return response


def _open_receivables(services: Services, customer_id: str) -> list[Receivable]:
    services.read_models("receivables")
    with services.snapshot() as conn:
        rows = list_receivables(conn, customer_id=customer_id, limit=1000)
    rows = sorted((row for row in rows if row["state"] not in lifecycle.CLOSED_STATES),
                  key=lambda row: (row["due_on"], row["invoice_number"]))
    return [services.app.get_receivable(uuid.UUID(str(row["id"]))) for row in rows[:MAX_RECEIVABLES]]


def _receivable_view(services: Services, r: Receivable, now: datetime, policy: Any, company: dict[str, Any]) -> dict[str, Any]:
    today = r.local_date(now)
    limits = policy.portal
    allowed = commands_for(CUSTOMER_ROLE, lifecycle.allowed_commands(r.state))
    if r.is_disputed:
        allowed = [c for c in allowed if c != "raise_dispute"]
    proposal = r.installment_proposal
    if proposal is not None and proposal["status"] == "pending":
        allowed = [c for c in allowed if c != "propose_installment_plan"]
    least = (r.balance * limits.promise_min_percent / 100).quantize(r.balance, rounding=ROUND_UP)
    breakdown = getattr(r, "balance_breakdown", None)  # late fees and interest, where the receivable has them
    if callable(breakdown):
        breakdown = breakdown()
    account = _bank_account(company, r.currency)
    transfer = _transfer_text(account, r) if account else None
    return {
        "r": r,
        "ref": r.invoice_number,
        "amount": r.amount - r.adjustment,
        "balance": r.balance,
        "breakdown": _breakdown(breakdown),
        "days_past_due": r.days_past_due(now),
        "promise": r.promise,
        "plan": r.installment_plan,
        "proposal": proposal,
        "dispute": r.dispute,
        "letters": _letters(services, r),
        "forms": [LIFECYCLE[c] for c in allowed],
        "latest_promise": today + timedelta(days=limits.promise_max_days),
        "least_promise": least,
        "today": today,
        "max_installments": limits.plan_max_installments,
        "latest_installment": today + timedelta(days=limits.plan_max_days),
        "account": account,
        "transfer": transfer,
        "transfer_qr": _qr(transfer) if transfer else None,
    }


def _breakdown(breakdown: Any) -> list[tuple[str, Any]]:
    """The charges breakdown as (part, amount) pairs, whatever mapping or object holds it."""
    if breakdown is None:
        return []
    items = breakdown.items() if isinstance(breakdown, dict) else vars(breakdown).items()
    return [(str(k), v) for k, v in items if isinstance(v, Decimal | int | str) and not str(k).startswith("_")]


def _letters(services: Services, r: Receivable) -> list[dict[str, Any]]:
    """The letters and messages that reached the customer (their deliveries), newest first."""
    found = [
        {"template": e.template, "channel": e.channel, "at": e.delivered_at}
        for e in services.app.events.get(r.id)
        if isinstance(e, Receivable.DeliveryRecorded)
    ]
    return list(reversed(found))


def _bank_account(company: dict[str, Any], currency: str) -> dict[str, Any] | None:
    accounts = company.get("bank_accounts", [])
    return next((a for a in accounts if a.get("currency") == currency), accounts[0] if accounts else None)


def _transfer_text(account: dict[str, Any], r: Receivable) -> str:
    """What the bank-transfer QR code holds, and the page shows beside it, word for word."""
    return "\n".join([
        f"Payee/收款人: {account['account_name']}",
        f"Bank/开户行: {account['bank']}",
        f"Account/账号: {account['account_number']}",
        f"Amount/金额: {r.currency} {format_money(r.balance)}",
        f"Reference/附言: {r.invoice_number}",
    ])


def _qr(text: str) -> str:
    """A QR code of `text` as a PNG data URI (the page's policy allows data: images only)."""
    return segno.make(text, error="m", micro=False).png_data_uri(scale=5, border=4)


# ---- the forms ----------------------------------------------------------------------------


def _command_route(command: Command) -> None:
    def run(
        token: TokenPath,
        receivable_ref: ReceivableRef,
        request: Request,
        services: ServicesDep,
        link: PortalLink,
        form: Annotated[dict[str, str], Depends(posted_form)],
    ) -> Response:
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not nonce or not hmac.compare_digest(_csrf(services, link, nonce), form.get("csrf", "")):
            raise CsrfRefused()
        r = _own_receivable(services, link, receivable_ref)
        lang = language_of(request)

        def refused(message: str, status: int = 422) -> Response:
            return _page(request, services, link, status=status, error={"ref": r.invoice_number, "command": command.name, "message": message})

        try:
            body = command.body.model_validate(forms.body_data(command, form, r.timezone) | {"override": None})
        except forms.FormError as exc:
            return refused(i18n.field_message(lang, exc.field))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            return refused(i18n.field_message(lang, str(first["loc"][0]) if first["loc"] else ""))
        fields = body.model_dump(exclude={"override"})
        key = form.get("idempotency_key", "")[:MAX_KEY_LENGTH]
        actor = customer_actor(link.customer_id)
        command_request = CommandRequest(
            actor=actor,
            correlation_id=f"portal:{uuid.uuid4()}",
            idempotency=Idempotency(
                f"portal:{key}", request_fingerprint("POST", request.url.path, body.model_dump(mode="json"))
            ) if key else None,
        )
        try:
            services.app.execute(command_request, r.id, command.name, **fields)
        except RuleViolationError as exc:
            return refused(i18n.rule_message(lang, exc.rule_id, exc.detail))
        except (CommandNotAllowedError, VersionMismatchError):
            return refused(i18n.gettext(lang, "This can no longer be done for this invoice; the page now shows where it stands."), 409)
        except IdempotencyKeyReusedError:
            return refused(i18n.gettext(lang, "This form was sent already."), 409)
        except NotFoundError:
            raise
        except CollectionsError:
            return refused(i18n.gettext(lang, "We could not record this. Please call us."))
        target = f"{PREFIX}/{token}?" + urlencode({"lang": lang, "done": command.name}) + "#r-" + quote(r.invoice_number, safe="")
        return RedirectResponse(target, status_code=303)

    run.__doc__ = f"The customer's `{command.name}` from their page: {command.summary}."
    run.__name__ = f"portal_{command.name}"
    router.add_api_route(f"{PREFIX}/{{token}}/receivables/{{receivable_ref}}/{command.path}", run, methods=["POST"], name=f"portal_{command.name}")


def _own_receivable(services: Services, link: Link, ref: str) -> Receivable:
    """The receivable named `ref` (an invoice number or id) when it is this customer's; else not found."""
    from ..api.present import resolve_id

    try:
        r = services.app.get_receivable(resolve_id(ref))
    except NotFoundError:
        raise NotFoundError("no such receivable") from None
    if r.customer_id != link.customer_id:
        raise NotFoundError("no such receivable")  # the same answer as for one that does not exist
    return r


for _declared in CUSTOMER_COMMANDS:
    _command_route(_declared)

#: The portal's pages and forms: guarded by the link in their path, not by an API key (docs/access.md).
PATHS: frozenset[str] = frozenset(
    route.path for route in router.routes if isinstance(route, APIRoute) and "{token}" in route.path
)
#: Its stylesheet, which anyone may fetch.
PUBLIC_PATHS: frozenset[str] = frozenset({f"{PREFIX}/static/{{name}}"})

__all__ = ["PATHS", "PUBLIC_PATHS", "router"]
