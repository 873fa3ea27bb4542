"""A receivable's evidence bundle: its whole record in a zip a third party can check offline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from ...application import evidence
from ...domain.trail import Actor
from ..deps import ServicesDep, read_current, require_view
from .receivables import ReceivableRef, resolve_id

router = APIRouter(prefix="/receivables", tags=["audit"])


@router.get(
    "/{receivable_ref}/evidence",
    response_class=Response,
    responses={200: {"content": {evidence.MEDIA_TYPE: {}}, "description": "The bundle (docs/evidence.md)"}},
)
def evidence_bundle(
    receivable_ref: ReceivableRef,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("evidence.read")],
    response: Response,
) -> Response:
    """The receivable's evidence bundle: history with its hash chain verified, letters, messages, contacts,
    policies, limitation; signed when a signing key is set."""
    rid = resolve_id(receivable_ref)
    services.app.get_receivable(rid)  # 404 before any read model is awaited
    read_current(services, response, "contacts_log", "outbox")
    bundle = evidence.build(services.evidence_sources(), rid, services.clock.now(), signer=services.signer)
    headers = {"Content-Disposition": f'attachment; filename="{bundle.filename}"'}
    if lag := response.headers.get("X-Projection-Lag"):
        headers["X-Projection-Lag"] = lag
    return Response(bundle.content, media_type=evidence.MEDIA_TYPE, headers=headers)
