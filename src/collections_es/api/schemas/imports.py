"""Imports: what an import did, or would do."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ImportErrorOut(BaseModel):
    line: int = Field(description="The line of the file (the header is line 1)")
    field: str = Field(description="The column at fault, dotted (`contacts.email`), or `file` / `line`")
    message: str


class UnmatchedOut(BaseModel):
    line: int
    invoice_number: str | None = Field(description="The invoice number the line gave, if any")
    reference: str = Field(description="The payment's reference (taken as the invoice number when none is given)")


class ImportSummaryOut(BaseModel):
    kind: str
    dry_run: bool
    written: bool = Field(description="Whether anything was written (false on a dry run)")
    lines: int = Field(description="Data lines read")
    created: int = Field(description="Customers or receivables created (or that would be, on a dry run)")
    unchanged: int = Field(description="Lines that exist already with the same data, or payments recorded already")
    recorded: int = Field(description="Payments recorded (or that would be)")
    unmatched_count: int
    unmatched: list[UnmatchedOut] = Field(description="Payment lines that match no receivable (at most 200 listed)")
    error_count: int
    errors: list[ImportErrorOut]
