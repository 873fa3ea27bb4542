"""Durable timers: for each open receivable, the next moments something is owed.

Derived from the log, never hand-edited: after each receivable event the
receivable's timers are recomputed from its state at that event's version and
the policy version that event recorded, so a rebuild gives the same timers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.schedule import owed

from .base import Projection, metadata

timers = sa.Table(
    "rm_timers",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime(), nullable=False, index=True),  # naive UTC on every database
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
)


class Timers(Projection):
    name = "timers"
    tables = (timers,)

    def __init__(
        self,
        load: Callable[[Any, int], Receivable],
        policy: Callable[[str], CollectionPolicy],
    ) -> None:
        self.load = load
        self.policy = policy

    @property
    def handles(self) -> Sequence[type]:
        return Receivable.event_classes()

    def prepare(self, events: list[Any]) -> dict[str, list[dict[str, Any]]]:
        """Each receivable's timers after the last of its events in the batch:
        timers are replaced whole, so earlier events of the batch need no load."""
        last: dict[Any, Any] = {}
        for event in events:
            last[event.originator_id] = event
        rows: dict[str, list[dict[str, Any]]] = {}
        for rid, event in last.items():
            receivable = self.load(rid, event.originator_version)
            rows[str(rid)] = [
                {
                    "receivable_id": str(rid),
                    "kind": t.kind,
                    "at": t.at.astimezone(UTC).replace(tzinfo=None),
                    "command": t.command,
                    "reason": t.reason,
                    "policy_version": event.policy_version,
                }
                for t in owed(receivable, self.policy(event.policy_version), event.timestamp)
            ]
        return rows

    def apply(self, conn: sa.Connection, event: Any, position: int, prepared: Any = None) -> None:
        rid = str(event.originator_id)
        rows = prepared.pop(rid, None)
        if rows is None:
            return  # an earlier event of this receivable in the batch wrote its final timers
        conn.execute(timers.delete().where(timers.c.receivable_id == rid))
        if rows:
            conn.execute(timers.insert(), rows)
