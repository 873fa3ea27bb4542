"""Letters to the customer about one receivable, and the receivable's contact log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError

from ...letters.figures import figures
from ...domain.errors import NotFoundError
from ...domain.trail import Actor
from ...letters import FORMATS, LANGUAGES, LetterError
from .. import present
from ..deps import ServicesDep, require_view
from ..errors import problem
from ..schemas import ContactLogPage
from .customers import contact_page
from .receivables import ReceivableRef, resolve_id

router = APIRouter(prefix="/receivables", tags=["letters"])

LetterKind = Literal["reminder", "dunning", "final_notice", "lawyer"]


@router.get(
    "/{receivable_ref}/letters/{kind}",
    responses={200: {"content": {"text/plain": {}, "text/html": {}, "application/pdf": {}}}},
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
    """A reminder, dunning letter (催款函), final notice or lawyer's letter (律师函) with the receivable's figures."""
    if lang not in LANGUAGES:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", "lang"), "msg": f"must be one of {', '.join(LANGUAGES)}", "input": lang}]
        )
    if format not in FORMATS:
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", "format"), "msg": f"must be one of {', '.join(FORMATS)}", "input": format}]
        )
    r = services.app.get_receivable(resolve_id(receivable_ref))
    try:
        customer = services.app.get_customer(r.customer_id)
    except NotFoundError:
        customer = None
    data = figures(r, customer, services.clock.now(), kind, services.letters.company)
    try:
        rendered = services.letters.letter(kind, lang, format, data)
    except LetterError as exc:
        return problem(503, str(exc))
    filename = f"{kind}-{r.invoice_number}-{lang}.{format}".replace("/", "_")
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
