"""The audit: verify the hash chains of the stored log, export every event."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from projections.receivables import ProjectedVersions

from ...adapters.checkpoints import CheckpointTaken
from ...application import audit
from ...application.checkpoints import CheckpointError
from ...domain.errors import NotFoundError
from ...application.access import PII_ROLES
from ...application.pii import Redactor
from ...domain.trail import Actor
from ..deps import ServicesDep, require_view
from ..errors import problem, problem_response
from ..schemas import AuditVerifyOut, CheckpointDocument, CheckpointOut, Instant

router = APIRouter(prefix="/audit", tags=["audit"])

MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def _invalid(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


@router.get("/verify", response_model=AuditVerifyOut)
def verify(services: ServicesDep, actor: Annotated[Actor, require_view("audit.read")]) -> Any:
    """Walk every hash chain in the stored log and compare it with the latest signed checkpoint;
    200 with `ok: false` and the first break when one is found."""
    return verify_store(services).as_dict()


def verify_store(services: Any) -> audit.VerifyReport:
    """Verify as the API and the console do: the chains, the read model, the latest checkpoint."""
    checkpoints = services.checkpoints
    latest = checkpoints.latest() if checkpoints is not None else None
    problems = checkpoints.sequence_problems(latest) if latest is not None else []
    return audit.verify(services.app, ProjectedVersions(services.engine), checkpoint=latest, checkpoint_problems=problems,
                        signature_checked=services.signer is not None)


@router.post("/checkpoints", response_model=CheckpointOut, status_code=201,
             responses={409: problem_response(409) | {"description": "No signing key, or the log does not verify"}})
def take_checkpoint(services: ServicesDep, actor: Annotated[Actor, require_view("audit.checkpoint")]) -> Any:
    """Take a signed checkpoint now: a Merkle root over every hash chain's head, signed with Ed25519."""
    try:
        return services.checkpoints.take().summary()
    except CheckpointTaken as exc:
        return problem(409, str(exc), type_="/problems/checkpoint-refused")
    except CheckpointError as exc:
        return problem(409, str(exc), type_="/problems/checkpoint-refused")


@router.get("/checkpoints", response_model=list[CheckpointOut])
def list_checkpoints(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("audit.read")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The latest signed checkpoints, oldest first."""
    return [c.summary() for c in services.checkpoints.store.all(limit=limit)]


@router.get("/checkpoints/{number}", response_model=CheckpointDocument)
def export_checkpoint(
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    services: ServicesDep,
    actor: Annotated[Actor, require_view("audit.read")],
) -> Any:
    """One checkpoint as a document to keep elsewhere: header, signature, public key and (for the
    latest ones) every chain's head; `collections-es verify --checkpoint FILE` compares a store with it."""
    found = services.checkpoints.store.get(number)
    if found is None:
        raise NotFoundError(f"no checkpoint {number}")
    return JSONResponse(
        jsonable_encoder(found.document(services.checkpoints.public_key_pem)),
        headers={"Content-Disposition": f'attachment; filename="collections-es-checkpoint-{number}.json"'},
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "Every event, oldest first"}},
)
def export(
    services: ServicesDep,
    actor: Annotated[Actor, require_view("audit.read")],
    format: Literal["jsonl", "csv"] = "jsonl",  # noqa: A002 - the query parameter's public name
    from_: Annotated[Instant | None, Query(alias="from", description="Events that occurred at or after this instant")] = None,
    to: Annotated[Instant | None, Query(description="Events that occurred before this instant")] = None,
) -> StreamingResponse:
    """Stream every event of the log (receivables, customers, the policy), oldest first, as JSON lines or CSV."""
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise _invalid(name, "an instant needs a time zone (Z)", value.isoformat())
    if from_ is not None and to is not None and from_ > to:
        raise _invalid("from", "must not be after 'to'", from_.isoformat())
    mask = None if actor.role in PII_ROLES else Redactor().data
    rows = audit.export_events(services.app, since=from_, until=to, mask=mask)
    body = audit.chunks(audit.SERIALISERS[format](rows))
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="collections-es-events.{format}"'},
    )


@router.get(
    "/public-key",
    response_class=Response,
    responses={
        200: {"content": {"application/x-pem-file": {}}, "description": "The Ed25519 public key (PEM)"},
        404: problem_response(404) | {"description": "No signing key is set (COLLECTIONS_SIGNING_KEY)"},
    },
)
def public_key(services: ServicesDep) -> Response:
    """The public key that checks evidence bundles' signatures (PEM); public, as a public key is."""
    signer = services.signer
    if signer is None:
        return problem(404, "evidence bundles are not signed here: COLLECTIONS_SIGNING_KEY is not set",
                       type_="/problems/not-found")
    return Response(
        signer.public_pem,
        media_type="application/x-pem-file",
        headers={"X-Key-Fingerprint": f"sha256:{signer.fingerprint}"},
    )
