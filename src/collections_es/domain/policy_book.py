"""The policy book: every version of the collection policy ever adopted, who
adopted it, when, and what changed. Events name the version they ran under;
this aggregate keeps what each version said."""

from __future__ import annotations

import uuid
from typing import Any

from .aggregate import TrailedAggregate
from .errors import RuleViolationError
from .policy import CollectionPolicy
from .trail import Context

POLICY_BOOK_ID = uuid.UUID("7d1e5c2a-0b6f-4a8e-93c4-5f2d8e1a6b70")


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Field-by-field changes between two policy documents."""
    changes: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += diff(before, after, f"{path}.")
        elif before != after:
            changes.append({"field": path, "from": before, "to": after})
    return changes


class PolicyBook(TrailedAggregate):
    class Opened(TrailedAggregate.Created):
        def evolve(self, book: PolicyBook) -> None:
            book.versions = {}
            book.current = None

    class Adopted(TrailedAggregate.Event):
        version: str
        document: dict[str, Any]
        changes: list[dict[str, Any]]

        def evolve(self, book: PolicyBook) -> None:
            book.versions = {**book.versions, self.version: self.document}
            book.current = self.version

    @classmethod
    def open(cls, ctx: Context) -> PolicyBook:
        return cls._start(cls.Opened, ctx, id=POLICY_BOOK_ID)

    def policy(self, version: str) -> CollectionPolicy:
        return CollectionPolicy.model_validate(self.versions[version])

    def adopt(self, ctx: Context, policy: CollectionPolicy) -> None:
        document = policy.model_dump(mode="json")
        if policy.version in self.versions:
            if self.policy(policy.version) == policy:
                raise RuleViolationError("policy.unchanged", f"version {policy.version} is in force already", field="version")
            raise RuleViolationError(
                "policy.version_reused", f"version {policy.version} was adopted before with other figures", field="version"
            )
        previous = self.versions[self.current] if self.current else {}
        self._record(self.Adopted, ctx, version=policy.version, document=document, changes=diff(previous, document))
