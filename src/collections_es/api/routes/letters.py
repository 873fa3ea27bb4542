"""Letters to the customer about one receivable, and the receivable's contact log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from ...letters.figures import figures
from ...domain.errors import NotFoundError
from ...domain.trail import Actor
from ...letters import FORMATS, KINDS, LANGUAGES, STAGES, LetterError, kind_named
from .. import present
from ..deps import ServicesDep, require_view
from ..errors import problem, problem_response
from ..schemas import ContactLogPage
from .customers import contact_page
from .receivables import ReceivableRef, resolve_id

router = APIRouter(prefix="/receivables", tags=["letters"])

LetterKind = Annotated[
    str,
    Path(
        max_length=32,
        description="The letter: `reminder`, `dunning` (催款函), `final_notice` or `lawyer_letter` (律师函); "
        "`lawyer` is accepted as the earlier name of `lawyer_letter`",
        json_schema_extra={"enum": list(KINDS)},
    ),
]


@router.get(
    "/{receivable_ref}/letters/{kind}",
    responses={
        200: {"content": {"text/plain": {}, "text/html": {}, "application/pdf": {}}},
        409: problem_response(409) | {"description": "The receivable has not reached the stage this letter is for, or is closed"},
    },
    response_class=Response,
)
def letter(
    receivable_ref: ReceivableRef,
    kind: LetterKind,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("letters.read")],
    lang: Annotated[str, Query(max_length=16, description="zh-CN or en", json_schema_extra={"enum": list(LANGUAGES)})] = "zh-CN",
    format: Annotated[str, Query(max_length=8, description="txt, html or pdf", json_schema_extra={"enum": list(FORMATS)})] = "txt",  # noqa: A002
) -> Response:
    """A reminder, dunning letter (催款函), final notice or lawyer's letter (律师函) with the receivable's figures,
    for a receivable at that letter's stage (else 409)."""
    letter_kind = kind_named(kind)
    if letter_kind is None:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("path", "kind"), "msg": f"must be one of {', '.join(KINDS)}", "input": kind}]
        )
    if lang not in LANGUAGES:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", "lang"), "msg": f"must be one of {', '.join(LANGUAGES)}", "input": lang}]
        )
    if format not in FORMATS:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", "format"), "msg": f"must be one of {', '.join(FORMATS)}", "input": format}]
        )
    return letter_response(services, services.app.get_receivable(resolve_id(receivable_ref)), letter_kind, lang, format)


def letter_response(services: Any, r: Any, letter_kind: str, lang: str, fmt: str) -> Response:
    """The letter of `letter_kind` for receivable `r`, as the API and the console serve it:
    409 (problem details) when the receivable is not at that letter's stage, 503 without the PDF font."""
    now = services.clock.now()
    stage, days_past_due = STAGES[letter_kind], r.days_past_due(now)
    if not stage.admits(r.state, days_past_due):
        return problem(
            409,
            f"{stage.describe()}; this receivable is {r.state}, {days_past_due} days past due",
            type_="/problems/letter-not-allowed",
            kind=letter_kind,
            state=r.state,
            days_past_due=days_past_due,
            needs_states=list(stage.states),
            needs_past_due=stage.past_due,
        )
    try:
        customer = services.app.get_customer(r.customer_id)
    except NotFoundError:
        customer = None
    data = figures(r, customer, now, letter_kind, services.letters.company, portal_url=services.portal_url(r.customer_id, now))
    try:
        rendered = services.letters.letter(letter_kind, lang, fmt, data)
    except LetterError as exc:
        return problem(503, str(exc))
    filename = f"{letter_kind}-{r.invoice_number}-{lang}.{fmt}".replace("/", "_")
    return Response(
        rendered.content,
        media_type=rendered.media_type,
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Content-Language": lang},
    )


@router.get("/{receivable_ref}/contacts-log", response_model=ContactLogPage, tags=["receivables"])
def contacts_log(
    receivable_ref: ReceivableRef,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("contacts.read")],
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> ContactLogPage:
    """Every contact recorded on this receivable, oldest first."""
    rid = resolve_id(receivable_ref)
    customer_id = services.app.get_receivable(rid).customer_id
    redactor = present.redactor_unless_pii(actor.role, services.app, customer_id)
    return contact_page(services, response, limit, cursor, redactor=redactor, receivable_id=str(rid))
