"""The base of every aggregate here: events that carry the trail and the hash chain.

Command methods decide (lifecycle, invariants) and then call `_record`, which
stamps the trail fields and links the event into the aggregate's hash chain.
Event `evolve` methods only assign: nothing that decides runs on replay.
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from . import compliance
from .trail import GENESIS_HASH, Context, event_hash, hashed_fields


class TrailedAggregate(Aggregate):
    """An aggregate whose every event names its actor, policy and predecessor."""

    class Event(Aggregate.Event):
        actor_id: str
        actor_role: str
        correlation_id: str
        policy_version: str
        scheduled_for: datetime | None
        override: dict[str, str] | None
        prev_hash: str
        hash: str
        # Added with strategies (ADR 0050): keyword-only with a default, so every subclass keeps
        # its fields' order and events recorded before it decode and verify unchanged.
        _: KW_ONLY
        strategy: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.last_hash = self.hash
            aggregate.policy_version = self.policy_version
            aggregate.strategy = self.strategy
            self.evolve(aggregate)

        def evolve(self, aggregate: Any) -> None:
            """Assign what this event changes; subclasses override."""

    # Plain class attributes, not annotations (those would become dataclass fields).
    last_hash = GENESIS_HASH
    policy_version = ""
    strategy = None  # the strategy the last event followed (ADR 0050)

    @classmethod
    def event_classes(cls) -> list[type]:
        """Every concrete event class this aggregate records."""
        return [
            value
            for value in vars(cls).values()
            if isinstance(value, type) and issubclass(value, TrailedAggregate.Event) and value.__name__ not in ("Event", "Created")
        ]

    @classmethod
    def _start(cls, event_class: type, ctx: Context, *, id: Any, **data: Any) -> Any:  # noqa: A002
        compliance.enforce(ctx, ())
        fields = _trail(ctx, prev_hash=GENESIS_HASH) | data
        content = {
            "originator_topic": get_topic(cls),
            "originator_id": id,
            "originator_version": cls.INITIAL_VERSION,
            **fields,
        }
        fields["hash"] = event_hash(event_class.__qualname__, _ordered(event_class, content))
        return cls._create(event_class, id=id, **fields)

    def _record(
        self, event_class: type, ctx: Context, *, breaches: Iterable[compliance.Breach] = (), **data: Any
    ) -> None:
        """Record an event once the command has decided. `breaches` are the preventive
        rules it would break: refused unless the context overrides the one broken."""
        compliance.enforce(ctx, breaches)
        fields = _trail(ctx, prev_hash=self.last_hash) | data
        content = {"originator_id": self.id, "originator_version": self.version + 1, **fields}
        fields["hash"] = event_hash(event_class.__qualname__, _ordered(event_class, content))
        self.trigger_event(event_class, **fields)


def _trail(ctx: Context, *, prev_hash: str) -> dict[str, Any]:
    override = None
    if ctx.override_rule_id:
        override = {"rule_id": ctx.override_rule_id, "reason": ctx.override_reason or ""}
    return ctx.trail_fields() | {"override": override, "prev_hash": prev_hash}


def _ordered(event_class: type, content: dict[str, Any]) -> dict[str, Any]:
    """Exactly the event's hashed fields (see `hashed_fields`), so verification can recompute the same."""
    names = [
        f.name for f in dataclasses.fields(event_class) if f.name != "hash" and f.default is dataclasses.MISSING
    ]
    missing = [n for n in names if n not in content]
    if missing:
        raise TypeError(f"{event_class.__qualname__} is missing fields {missing}")
    return hashed_fields(event_class, content)
