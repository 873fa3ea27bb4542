"""Every refusal the domain and the application can make, under one base."""

from __future__ import annotations


class CollectionsError(Exception):
    """Base of every error this service raises on purpose."""


class RuleViolationError(CollectionsError):
    """A command broke a rule of the procedure or an invariant of the aggregate."""

    def __init__(self, rule_id: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.rule_id = rule_id
        self.detail = detail
        self.field = field


class CommandNotAllowedError(CollectionsError):
    """The lifecycle does not allow this command in the current state."""

    def __init__(self, command: str, state: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"'{command}' is not allowed in state '{state}'; allowed now: {allowed_text}"
        )
        self.command = command
        self.state = state
        self.allowed = allowed


class NotFoundError(CollectionsError):
    """No such receivable, customer or other resource."""


class DuplicateError(CollectionsError):
    """The thing exists already (an invoice issued twice, a customer registered twice)."""


class VersionMismatchError(CollectionsError):
    """The caller expected another version than the stored one (If-Match)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, the receivable is at version {actual}")
        self.expected = expected
        self.actual = actual


class PermissionDeniedError(CollectionsError):
    """The actor's role may not do this."""


class IdempotencyKeyReusedError(CollectionsError):
    """An Idempotency-Key was sent again with a different request."""


class ConcurrencyExhaustedError(CollectionsError):
    """Concurrent writers kept winning; the command was not applied (safe to retry)."""
