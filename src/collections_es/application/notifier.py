"""The sender: takes due messages from the outbox and hands them to a transport.

A message is taken by one sender at a time (ADR 0063): on PostgreSQL its row is
locked `FOR UPDATE SKIP LOCKED` while it is sent, so other senders pass over it and
a sender that dies lets go at once; on SQLite a conditional UPDATE (status and
attempts unchanged) and a lease claim it, and a sender that dies while holding the
lease leaves the message to be taken again once the lease ends.
A failed attempt is retried after an exponential backoff computed from the
injected clock (its error is kept and logged with contact details masked); after `max_attempts` it ends as `failed`. A message never tried
whose event is older than `max_age` ends as `expired` unsent (a sender started on
an old log must not send last year's reminders).

A message whose receivable is on hold when its turn comes is not sent: it ends as
`withheld` (ADR 0052; collection resumes at the release with the steps owed then,
not with messages of the paused days).

A message the transport accepted is delivered: the notifier hands it to
`record_delivery` (the composition root wires it to the receivable's
`record_delivery` command, ADR 0036), before marking it sent, so a crash in
between sends it again and records it once (the receivable refuses a message id
it has recorded). A receivable that has closed meanwhile, or a delivery already
recorded, is skipped quietly; any other failure to record is logged and the
message is still marked sent: it went out, and must not go out twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..domain.calendar import duration_in_words
from ..domain.errors import CommandNotAllowedError, RuleViolationError
from .clock import Clock
from .pii import scrub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    kind: str
    channel: str
    recipient: str
    language: str
    subject: str
    body: str


@dataclass(frozen=True)
class Delivery:
    """A message its transport accepted: what the receivable records (`record_delivery`)."""

    message_id: str
    receivable_id: str
    channel: str
    template: str
    delivered_at: datetime


RecordDelivery = Callable[[Delivery], None]
#: Whether a receivable (its id) is on hold at an instant (domain/holds.py; bootstrap wires it).
IsHeld = Callable[[str, datetime], bool]


class Transport(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Deliver or raise."""


class NotConfigured:
    """A channel without settings: every attempt fails with why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send(self, message: OutgoingMessage) -> None:
        raise RuntimeError(self.reason)


@dataclass(frozen=True)
class Attempt:
    id: str
    status: str
    error: str | None = None


class OutboxStore(Protocol):
    """Where the messages wait (the outbox read model; bootstrap wires `projections.outbox.SqlOutbox`)."""

    def expire_stale(self, before: datetime, note: str) -> None:
        """Never-tried messages whose event is older than `before` end as `expired`."""

    def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Messages due for an attempt at `now` (or whose lease ran out), oldest first."""

    def take(self, now: datetime, until: datetime) -> AbstractContextManager[dict[str, Any] | None]:
        """The oldest message due at `now` that no other sender holds, held by this sender until the
        block ends (a lease until `until` where rows cannot be locked); None when none is left."""

    def finish(self, message_id: str, status: str, attempts: int, *, error: str | None = None,
               sent_at: datetime | None = None, next_attempt_at: datetime | None = None) -> None:
        """Write the attempt's outcome."""


class Notifier:
    def __init__(
        self,
        store: OutboxStore,
        clock: Clock,
        transports: dict[str, Transport],
        *,
        catch_up: Any,
        max_attempts: int = 5,
        backoff_seconds: float = 60.0,
        backoff_max_seconds: float = 3600.0,
        lease_seconds: float = 300.0,
        max_age: timedelta = timedelta(hours=72),
        record_delivery: RecordDelivery | None = None,
        is_held: IsHeld | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.transports = transports
        self.catch_up = catch_up
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.lease_seconds = lease_seconds
        self.max_age = max_age
        self.record_delivery = record_delivery
        self.is_held = is_held

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failure: base × 2^(attempts-1), capped."""
        return timedelta(seconds=min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1)))

    def run_once(self, limit: int = 100) -> list[Attempt]:
        """Bring the outbox up to the log, then try every message that is due now."""
        self.catch_up()
        now = self.clock.now()
        # Never tried and already stale (e.g. events from before the sender was deployed): not sent.
        self.store.expire_stale(
            now - self.max_age,
            f"not sent: its event is older than {duration_in_words(self.max_age)} (COLLECTIONS_NOTIFY_MAX_AGE_HOURS)",
        )
        attempts: list[Attempt] = []
        while len(attempts) < limit:
            with self.store.take(now, self.clock.now() + timedelta(seconds=self.lease_seconds)) as row:
                if row is None:
                    return attempts
                attempts.append(self._attempt(row))
        return attempts

    def _attempt(self, row: dict[str, Any]) -> Attempt:
        """Send one message this sender holds, and write the outcome."""
        now = self.clock.now()
        if self.is_held is not None and self.is_held(row["receivable_id"], now):
            note = "not sent: collection with the customer was on hold"
            self.store.finish(row["id"], "withheld", row["attempts"], error=note)
            log.info("message %s withheld: its receivable is on hold", row["id"])
            return Attempt(row["id"], "withheld", note)
        attempts = row["attempts"] + 1
        message = OutgoingMessage(
            row["id"], row["kind"], row["channel"], row["recipient"], row["language"], row["subject"], row["body"]
        )
        try:
            self.transports[row["channel"]].send(message)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt, recorded
            # Servers echo the address they refuse: the recipient never reaches the log or `last_error`.
            error = scrub(f"{type(exc).__name__}: {exc}", row["recipient"])[:2000]
            status = "failed" if attempts >= self.max_attempts else "pending"
            retry_at = None if status == "failed" else now + self.backoff(attempts)
            log.warning("message %s attempt %d failed: %s", row["id"], attempts, error)
            self.store.finish(row["id"], status, attempts, error=error, next_attempt_at=retry_at)
            return Attempt(row["id"], status, error)
        self._delivered(row, now)
        self.store.finish(row["id"], "sent", attempts, sent_at=now)
        return Attempt(row["id"], "sent")

    def _delivered(self, row: dict[str, Any], at: datetime) -> None:
        if self.record_delivery is None:
            return
        delivery = Delivery(row["id"], row["receivable_id"], row["channel"], row["kind"], at)
        try:
            self.record_delivery(delivery)
        except CommandNotAllowedError as exc:  # closed meanwhile (settled, written off)
            log.info("delivery of message %s not recorded: %s", row["id"], exc)
        except RuleViolationError as exc:
            # Recorded already (sent again after a crash), or refused: either way, nothing to retry.
            level = logging.INFO if exc.rule_id == "delivery.duplicate" else logging.WARNING
            log.log(level, "delivery of message %s not recorded: %s", row["id"], exc)
        except Exception:  # noqa: BLE001 - the message went out: mark it sent whatever happens here
            log.exception("delivery of message %s could not be recorded on its receivable", row["id"])
