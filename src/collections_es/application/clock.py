"""Injected clocks. The domain never reads a clock; the application asks one of these."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol

from .fields import INSTANT_RANGE, in_instant_range


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real time, UTC. freezegun freezes it in tests."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ClockError(ValueError):
    pass


class SandboxClock:
    """A clock that stands still until told to move forward, like a payment platform's test clock."""

    def __init__(self, start: datetime) -> None:
        self._now = _utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, to: datetime) -> datetime:
        to = _utc(to)
        if not in_instant_range(to):  # like every instant the API takes: later ones overflow calendars
            raise ClockError(f"the sandbox clock moves only to instants {INSTANT_RANGE}")
        with self._lock:
            if to < self._now:
                raise ClockError(f"the sandbox clock only moves forward; it is {self._now.isoformat()}")
            self._now = to
            return self._now


class FixedClock:
    """A clock for tests and tools that shows whatever it was last set to."""

    def __init__(self, at: datetime) -> None:
        self.at = _utc(at)

    def now(self) -> datetime:
        return self.at


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ClockError("instants must carry a time zone (e.g. 2026-03-01T09:00:00Z)")
    return at.astimezone(UTC)
