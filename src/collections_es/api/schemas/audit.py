"""The audit's verification report and its signed checkpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class AuditBreakOut(BaseModel):
    kind: str = Field(
        description="edited, deleted, reordered, undecodable or broken_link; against the latest checkpoint "
        "rehashed, truncated or chain_deleted; checkpoint when a checkpoint itself does not check (docs/audit.md)"
    )
    aggregate_id: str
    aggregate_type: str | None
    receivable_id: str | None = Field(description="The aggregate id when it is a receivable")
    version: int
    notification_id: int | None = Field(description="Position in the log where the break shows")
    detail: str


class CheckpointCompared(BaseModel):
    number: int
    taken_at: datetime
    up_to: int
    chains: int
    root: str
    compared: bool = Field(description="false when the checkpoint itself does not check (see the `checkpoint` breaks)")
    signature_checked: bool = Field(
        description="false when no key was at hand to check its signature (COLLECTIONS_SIGNING_KEY unset): "
        "its heads and root were still compared"
    )


class AuditVerifyOut(BaseModel):
    ok: bool
    checked_events: int = Field(description="Events of hash-chained aggregates read and checked")
    checked_aggregates: int
    skipped_events: int = Field(description="Events without a trail (idempotency records), not chained")
    up_to: int = Field(description="The log was verified up to this notification id")
    read_model_compared: bool
    first_break: AuditBreakOut | None
    break_count: int
    breaks: list[AuditBreakOut] = Field(description="The first 100 breaks in log order")
    checkpoint: CheckpointCompared | None = Field(
        default=None, description="The latest signed checkpoint, and whether the store was compared with it"
    )


class CheckpointOut(BaseModel):
    """A signed checkpoint's header (what is signed, as canonical JSON) and its signature."""

    format: str
    number: int
    taken_at: str = Field(description="UTC instant, e.g. 2026-03-02T01:00:00Z")
    up_to: int = Field(description="The log position the heads were taken at")
    chains: int = Field(description="Hash chains (aggregates) whose heads the root covers")
    root: str = Field(description="RFC 6962 Merkle root (hex) over every chain's head")
    previous_root: str | None = Field(description="The root of the checkpoint before it")
    key: str = Field(description="SHA-256 fingerprint of the Ed25519 public key (GET /audit/public-key)")
    signature: str = Field(description="Ed25519 signature (base64) of the header as canonical JSON")


class CheckpointHead(BaseModel):
    aggregate_id: str
    aggregate_type: str | None
    version: int
    hash: str


class CheckpointDocument(BaseModel):
    checkpoint: dict[str, object] = Field(description="The signed header")
    signature: str
    algorithm: str
    public_key: str | None = Field(description="The public key (PEM) that checks the signature")
    heads: list[CheckpointHead] | None = Field(description="Every chain's head (kept for the latest checkpoints)")
