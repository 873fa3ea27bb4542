"""Idempotency keys, stored as aggregates saved in the same transaction as the
events they caused (ADR 0003): a crash can never keep one without the other.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from eventsourcing.domain import Aggregate

IDEMPOTENCY_NAMESPACE = uuid.UUID("a3c5e0d2-6b1f-4f8e-9a7d-2e4b6c8d0f13")
MAX_KEY_LENGTH = 255


def idempotency_record_id(actor_id: str, key: str) -> uuid.UUID:
    """Keys are scoped per actor: two clients may pick the same key."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{actor_id}\x00{key}")


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same": method, path and the parsed JSON body."""
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class IdempotencyRecord(Aggregate):
    """The outcome of the first request sent with a key."""

    class Recorded(Aggregate.Created):
        request_hash: str
        status: int
        resource: str
        resource_id: uuid.UUID
        resource_version: int

    def __init__(self, request_hash: str, status: int, resource: str, resource_id: uuid.UUID, resource_version: int):
        self.request_hash = request_hash
        self.status = status
        self.resource = resource
        self.resource_id = resource_id
        self.resource_version = resource_version
