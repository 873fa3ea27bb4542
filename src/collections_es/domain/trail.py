"""Who did what, why, under which policy: the context every event records,
and the hash chain that makes the trail tamper-evident."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .policy import CollectionPolicy

if TYPE_CHECKING:
    from .compliance import ContactAttempt

GENESIS_HASH = "0" * 64
# Fields every trailed event carries; the rest of an event is its `data` (history, export).
TRAIL_FIELDS: frozenset[str] = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor_id",
        "actor_role",
        "correlation_id",
        "policy_version",
        "strategy",
        "scheduled_for",
        "override",
        "prev_hash",
        "hash",
        "state_after",
    }
)
SCHEDULER_ACTOR = "system:scheduler"
#: The role of a customer acting on their own portal page; the actor is `customer:<customer_id>`.
CUSTOMER_ROLE = "customer"


@dataclass(frozen=True)
class Actor:
    id: str
    role: str


def customer_actor(customer_id: str) -> Actor:
    """The actor a customer's own actions are recorded with (docs/portal.md)."""
    return Actor(f"{CUSTOMER_ROLE}:{customer_id}", CUSTOMER_ROLE)


@dataclass(frozen=True)
class Context:
    """Everything a command needs besides its own fields; `now` comes from the injected clock."""

    actor: Actor
    now: datetime
    correlation_id: str
    policy: CollectionPolicy
    scheduled_for: datetime | None = None
    override_rule_id: str | None = None
    override_reason: str | None = None
    # The customer's recent contacts on its other receivables (frequency caps across receivables).
    customer_contacts: tuple[ContactAttempt, ...] = ()
    # The strategy of the policy the command follows (None: the policy's own figures); `policy`
    # is then the effective policy that strategy makes (domain/strategy.py, ADR 0050).
    strategy: str | None = None

    def trail_fields(self) -> dict[str, Any]:
        """The fields every event carries (besides its hash-chain links)."""
        return {
            "timestamp": self.now,
            "actor_id": self.actor.id,
            "actor_role": self.actor.role,
            "correlation_id": self.correlation_id,
            "policy_version": self.policy.version,
            "strategy": self.strategy,
            "scheduled_for": self.scheduled_for,
        }


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def hashed_payload(event_type: str, content: dict[str, Any]) -> str:
    """The exact text an event's hash is taken over: JSON of `{"type", "content"}` (every
    field but `hash`, canonically encoded), keys sorted, no spaces, non-ASCII as is."""
    body = {k: v for k, v in content.items() if k != "hash"}
    return json.dumps(
        {"type": event_type, "content": _canonical(body)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def payload_hash(payload: str) -> str:
    """SHA-256 (hex) of a hashed payload's UTF-8 bytes."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def event_hash(event_type: str, content: dict[str, Any]) -> str:
    """SHA-256 over the event's type and every field but `hash`, canonically encoded."""
    return payload_hash(hashed_payload(event_type, content))


def hashed_fields(event_class: type, content: dict[str, Any]) -> dict[str, Any]:
    """The fields that enter an event's hash: all but `hash`, less optional fields
    added to an event class later that hold their default. Events recorded before
    such a field existed therefore verify unchanged, and decode with the default."""
    out: dict[str, Any] = {}
    for f in fields(event_class):
        if f.name == "hash":
            continue
        if f.default is not MISSING and content.get(f.name, f.default) == f.default:
            continue
        out[f.name] = content[f.name]
    return out


def stored_event_payload(event: Any) -> str:
    """The text a (decoded) event object's hash is taken over (`hashed_payload`)."""
    content = {f.name: getattr(event, f.name) for f in fields(event)}
    return hashed_payload(type(event).__qualname__, hashed_fields(type(event), content))


def stored_event_hash(event: Any) -> str:
    """Recompute the hash of a (decoded) event object, for verification."""
    return payload_hash(stored_event_payload(event))
