"""Token buckets, per process: one per API key (requests) and one per client address
(failed authentications). ADR 0031 says why per process and not shared."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings


# Float noise: 0.6 tokens short at 0.1 a second is a wait of 5.999999… s, which is 6 s, and a
# client that comes back after the Retry-After it was given finds its token there.
_EPSILON = 1e-9


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """`burst` tokens per key, refilled at `per_minute` a minute. `burst == 0` disables it.
    `monotonic` is the time source (seconds); tests inject a fake one."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.monotonic = monotonic
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.rate > 0

    def take(self, key: str) -> int:
        """Take a token for `key`: 0 when there was one, else the whole seconds to wait
        for the next (the request is refused and nothing is taken)."""
        if not self.enabled:
            return 0
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1 - _EPSILON:
                bucket.tokens = max(0.0, bucket.tokens - 1)
                return 0
            return self._wait(bucket)

    def wait(self, key: str) -> int:
        """0 when `key` has a token left, else the whole seconds until it has one (takes nothing)."""
        if not self.enabled:
            return 0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0
            bucket = self._refilled(key)
            return 0 if bucket.tokens >= 1 - _EPSILON else self._wait(bucket)

    def _wait(self, bucket: _Bucket) -> int:
        return max(1, math.ceil((1 - bucket.tokens) / self.rate - _EPSILON))

    def _refilled(self, key: str) -> _Bucket:
        now = self.monotonic()
        bucket = self._buckets.pop(key, None)  # re-inserted below: the dict stays in least-recent-first order
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.at = now
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            self._forget(now)
        return bucket

    def _forget(self, now: float) -> None:
        """Keep memory bounded: drop buckets that have refilled (forgetting them changes nothing),
        then, if still too many, the least recently used."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]


class RateLimits:
    """What the auth dependency consults: requests per API key, failed authentications per address."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        failures_per_minute: float,
        failure_burst: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = TokenBuckets(per_minute, burst, monotonic=monotonic)
        self.failures = TokenBuckets(failures_per_minute, failure_burst, monotonic=monotonic)

    @classmethod
    def from_settings(cls, settings: Settings, monotonic: Callable[[], float] = time.monotonic) -> RateLimits:
        return cls(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            failures_per_minute=settings.auth_failures_per_minute,
            failure_burst=settings.auth_failure_burst,
            monotonic=monotonic,
        )
