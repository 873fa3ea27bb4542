"""Signed checkpoints of every hash chain's head (ADR 0061).

A chain's head is its last event: (aggregate id, version, hash). A checkpoint is a Merkle
root over the heads of every chained aggregate (receivables, customers, the policy book)
up to a position of the log, with its number, instant and the root of the checkpoint
before it, signed with Ed25519 (COLLECTIONS_SIGNING_KEY). Someone who can write the
database can re-hash a chain's tail or delete its last events and leave a valid chain;
they cannot make the heads match a checkpoint signed before, nor sign a new one.

A checkpoint is taken only of a log that verifies: from the previous checkpoint's heads,
every event after its position is checked (hash, link, versions) as `verify` checks it,
so the cost of a checkpoint follows the events since the last one. `verify` then
compares the whole store with the latest checkpoint (`audit.verify(..., checkpoint=)`)
and names each chain that changed since: re-hashed, cut short, or gone.

Merkle tree as RFC 6962 (Certificate Transparency): leaf = SHA-256(0x00 ‖ "id:version:hash"),
node = SHA-256(0x01 ‖ left ‖ right), leaves in aggregate-id order; the empty tree's root
is SHA-256 of nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from eventsourcing.application import Application

from ..adapters.signing import Signer, fingerprint, is_valid, load_public_pem
from . import audit
from .clock import Clock

FORMAT = "collections-es/checkpoint/1"


class CheckpointError(Exception):
    """A checkpoint cannot be taken (no signing key, or the log does not verify)."""


@dataclass(frozen=True)
class Head:
    aggregate_id: str
    aggregate_type: str | None
    version: int
    hash: str

    def leaf(self) -> bytes:
        return hashlib.sha256(b"\x00" + f"{self.aggregate_id}:{self.version}:{self.hash}".encode("ascii")).digest()


def merkle_root(leaves: list[bytes]) -> str:
    """RFC 6962's Merkle tree hash (pairs from the left, an odd last node carried up)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = leaves
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def root_of(heads: Iterable[Head]) -> str:
    return merkle_root([h.leaf() for h in sorted(heads, key=lambda h: h.aggregate_id)])


@dataclass(frozen=True)
class Checkpoint:
    number: int
    taken_at: datetime
    up_to: int  # the log position the heads are taken at
    chains: int
    root: str
    previous_root: str | None
    key: str  # fingerprint of the public key that signs it
    signature: str  # base64
    heads: list[Head] | None  # None when not kept (older checkpoints)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "number": self.number,
            "taken_at": self.taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "up_to": self.up_to,
            "chains": self.chains,
            "root": self.root,
            "previous_root": self.previous_root,
            "key": self.key,
        }

    def header_bytes(self) -> bytes:
        """What is signed: the header as canonical JSON."""
        return json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_stored(cls, header: dict[str, Any], signature: str, heads: list[Head] | None) -> Checkpoint:
        return cls(
            number=int(header["number"]),
            taken_at=datetime.fromisoformat(header["taken_at"].replace("Z", "+00:00")),
            up_to=int(header["up_to"]),
            chains=int(header["chains"]),
            root=str(header["root"]),
            previous_root=header.get("previous_root"),
            key=str(header["key"]),
            signature=signature,
            heads=heads,
        )

    def summary(self) -> dict[str, Any]:
        return {**self.header(), "signature": self.signature}

    def document(self, public_key_pem: str | None) -> dict[str, Any]:
        """The exported checkpoint: enough to check it and compare a store with it anywhere."""
        return {
            "checkpoint": self.header(),
            "signature": self.signature,
            "algorithm": "Ed25519",
            "public_key": public_key_pem,
            "heads": None if self.heads is None else [
                {"aggregate_id": h.aggregate_id, "aggregate_type": h.aggregate_type, "version": h.version, "hash": h.hash}
                for h in self.heads
            ],
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Checkpoint:
        heads = document.get("heads")
        return cls.from_stored(
            document["checkpoint"],
            document["signature"],
            None if heads is None else [Head(h["aggregate_id"], h.get("aggregate_type"), int(h["version"]), h["hash"])
                                        for h in heads],
        )

    def problems(self, public_key: Any | None) -> list[str]:
        """Why this checkpoint cannot be trusted (empty when it can): a signature that does not
        check with the key, heads whose Merkle root is not the signed root."""
        found = []
        if public_key is not None:  # without one the signature cannot be checked here (say so, not a break)
            if fingerprint(public_key) != self.key:
                found.append(f"signed with another key ({self.key[:16]}…)")
            try:
                signature = base64.b64decode(self.signature, validate=True)
            except (binascii.Error, ValueError):
                signature = b""
            if not is_valid(public_key, signature, self.header_bytes()):
                found.append("its signature does not match its content")
        if self.heads is not None:
            if len(self.heads) != self.chains:
                found.append(f"it lists {len(self.heads)} heads, its header {self.chains}")
            elif root_of(self.heads) != self.root:
                found.append("its heads do not make its Merkle root")
        return found


class CheckpointStore(Protocol):
    def latest(self, *, with_heads: bool = True) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...

    def all(self, *, limit: int | None = None) -> list[Checkpoint]: ...


class Checkpoints:
    """Takes checkpoints (on demand and when one is due) and tells the latest."""

    def __init__(
        self,
        app: Application,
        store: CheckpointStore,
        clock: Clock,
        signer: Signer | None,
        *,
        interval: timedelta | None = None,
        page_size: int = audit.PAGE_SIZE,
    ) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.signer = signer
        self.interval = interval
        self.page_size = page_size

    @property
    def public_key_pem(self) -> str | None:
        return self.signer.public_pem if self.signer is not None else None

    def take(self) -> Checkpoint:
        """A new checkpoint of every chain's head as of the log's head now; CheckpointError
        when there is no signing key or the log since the last checkpoint does not verify."""
        if self.signer is None:
            raise CheckpointError("checkpoints are signed: set COLLECTIONS_SIGNING_KEY (`collections-es keys signing`)")
        previous = self.store.latest()
        base = previous if previous is not None and previous.heads is not None and not previous.problems(
            self.signer.public_key) else None
        report, heads = audit.walk_heads(
            self.app,
            start=base.up_to if base else 0,
            seed=[(uuid.UUID(h.aggregate_id), h.aggregate_type, h.version, h.hash) for h in base.heads] if base else [],
            page_size=self.page_size,
        )
        if not report.ok:
            first = report.first_break
            assert first is not None
            raise CheckpointError(
                f"the log does not verify, so it is not vouched for: {first.kind} at {first.aggregate_type or 'aggregate'} "
                f"{first.aggregate_id} version {first.version} ({first.detail}); run verify"
            )
        ordered = sorted((Head(str(a), t, v, h) for a, t, v, h in heads), key=lambda h: h.aggregate_id)
        unsigned = Checkpoint(
            number=(previous.number + 1) if previous else 1,
            taken_at=self.clock.now(),
            up_to=report.up_to,
            chains=len(ordered),
            root=root_of(ordered),
            previous_root=previous.root if previous else None,
            key=self.signer.fingerprint,
            signature="",
            heads=ordered,
        )
        checkpoint = replace(unsigned, signature=base64.b64encode(self.signer.sign(unsigned.header_bytes())).decode())
        self.store.save(checkpoint)
        return checkpoint

    def take_if_due(self) -> Checkpoint | None:
        """The periodic checkpoint: when `interval` has passed since the last one and the log grew."""
        if self.signer is None or self.interval is None:
            return None
        latest = self.store.latest(with_heads=False)
        if latest is not None:
            if self.clock.now() < latest.taken_at + self.interval:
                return None
            if (self.app.recorder.max_notification_id() or 0) <= latest.up_to:
                return None
        return self.take()

    def latest(self) -> Checkpoint | None:
        return self.store.latest()

    def sequence_problems(self, latest: Checkpoint | None = None) -> list[str]:
        """The checkpoints kept, checked as a sequence: numbers without a gap, each naming the root
        before it, each signature valid; and the `latest` one's heads make its root."""
        public_key = self.signer.public_key if self.signer is not None else None
        found, before = [], None
        for checkpoint in self.store.all():
            if latest is not None and checkpoint.number == latest.number:
                checkpoint = latest  # with its heads
            for problem in checkpoint.problems(public_key):
                found.append(f"checkpoint {checkpoint.number}: {problem}")
            if before is not None:
                if checkpoint.number != before.number + 1:
                    found.append(f"checkpoints {before.number + 1} to {checkpoint.number - 1} are missing")
                elif checkpoint.previous_root != before.root:
                    found.append(f"checkpoint {checkpoint.number} does not follow checkpoint {before.number}")
            before = checkpoint
        return found


def load_document(text: str | bytes, public_key_pem: str | None) -> tuple[Checkpoint, Any]:
    """An exported checkpoint and the public key to check it with (the given one, else its own)."""
    document = json.loads(text)
    checkpoint = Checkpoint.from_document(document)
    pem = public_key_pem or document.get("public_key")
    return checkpoint, (load_public_pem(pem) if pem else None)

