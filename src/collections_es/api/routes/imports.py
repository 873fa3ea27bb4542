"""Imports: customers, receivables and payments from a CSV body (ADR 0043)."""

from __future__ import annotations

from tempfile import SpooledTemporaryFile
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...domain.trail import Actor
from ...imports import import_csv
from ..deps import ServicesDep, require_view
from ..errors import problem, problem_response
from ..schemas.imports import ImportSummaryOut

router = APIRouter(prefix="/imports", tags=["imports"])

CSV_MEDIA_TYPES = ("text/csv", "application/csv")
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "CSV, UTF-8, with a header row: the columns are the fields of the matching POST body, "
        "nested ones dotted (`contacts.email`); see docs/imports.md",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/{kind}",
    response_model=ImportSummaryOut,
    openapi_extra=CSV_BODY,
    responses={status: problem_response(status) for status in (413, 415, 422)},
)
async def import_file(
    kind: Annotated[Literal["customers", "receivables", "payments"], Path(description="What the file holds")],
    http: Request,
    services: ServicesDep,
    actor: Annotated[Actor, require_view("imports.write")],
    dry_run: Annotated[bool, Query(description="Validate and say what would happen; write nothing")] = False,
) -> ImportSummaryOut | JSONResponse:
    """Import a CSV file: every line validated first; one bad line imports nothing (422 listing the lines)."""
    media_type = (http.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type not in CSV_MEDIA_TYPES:
        return problem(415, "the body must be text/csv", type_="/problems/unsupported-media-type")
    limit = services.settings.import_max_bytes
    spool = SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - closed below
    try:
        size = 0
        async for chunk in http.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"the file exceeds {limit} bytes (COLLECTIONS_IMPORT_MAX_BYTES)")
            spool.write(chunk)
        spool.seek(0)
        summary = await run_in_threadpool(
            import_csv, services.app, actor, kind, spool, dry_run=dry_run, max_lines=services.settings.import_max_lines, size=size
        )
    finally:
        spool.close()
    if not summary.ok:
        first = summary.errors[0]
        return problem(
            422,
            f"{summary.error_count} error(s), "
            + ("the other lines imported (changed meanwhile by another writer)" if summary.written else "nothing imported")
            + f"; the first: {first}",
            type_="/problems/import-invalid",
            field=first.field,
            errors=[e.as_dict() for e in summary.errors],
            error_count=summary.error_count,
        )
    return ImportSummaryOut.model_validate(summary.as_dict())
