"""Webhooks: subscriptions, and the sender that delivers the outbox's rows (ADR 0045).

Subscriptions are made by supervisors (`Webhooks.subscribe`): a URL, the event types
wanted (`Receivable.PaymentRecorded`, `Customer.CreditHoldChanged`, … or `*`) and a
secret shown once. The URL must be http(s) and its host must resolve to public addresses
only, unless `COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE` (checked again before every attempt:
DNS can change; redirects are never followed).

`WebhookSender` takes due deliveries from the `DeliveryStore` port (bootstrap wires
`projections.webhooks.SqlDeliveries`) one sender at a time (ADR 0063: locked FOR UPDATE SKIP
LOCKED while sent on PostgreSQL, a conditional UPDATE and a lease on SQLite), so two senders
never send one at once; POSTed with httpx and signed as Standard Webhooks
(`webhook-id`: the delivery id, `webhook-timestamp`: the sender's system time in seconds,
`webhook-signature`: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`); any 2xx is
delivered, anything else a failed try, retried after an exponential backoff from the
injected clock, `failed` after `max_attempts` tries. The store hands out a delivery only
when the earlier ones of its subscription and receivable (or customer) are delivered or
failed, so each receivable's events arrive in order. At least once: a sender that dies
between the POST and marking it delivered leaves it to be sent again, with the same
`webhook-id`: at once on PostgreSQL (its lock ends with its connection), once its lease ends on SQLite.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..domain.errors import NotFoundError, RuleViolationError
from .clock import Clock

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
Resolve = Callable[..., list[Any]]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def check_url(url: str, *, allow_private: bool, resolve: Resolve = socket.getaddrinfo) -> None:
    """Refuse (422 naming `url`) anything but http(s) to a host whose every address is public."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise RuleViolationError("webhook.url_invalid", f"the URL is not valid: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RuleViolationError("webhook.url_invalid", "the URL must be http:// or https:// with a host", field="url")
    if allow_private:
        return
    try:
        addresses = {info[4][0] for info in resolve(host, port or (443 if parts.scheme == "https" else 80),
                                                     type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        raise RuleViolationError("webhook.url_unresolved", f"the host '{host}' does not resolve", field="url") from None
    for address in sorted(addresses):
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise RuleViolationError(
                "webhook.url_not_public",
                f"the host '{host}' resolves to {ip}, a loopback, private, link-local or otherwise non-public "
                "address (COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE allows it)",
                field="url",
            )


class DeliveryStore(Protocol):
    """Where subscriptions and deliveries are kept (bootstrap wires `projections.webhooks.SqlDeliveries`)."""

    def add_subscription(self, row: dict[str, Any]) -> None: ...
    def subscriptions(self) -> list[dict[str, Any]]: ...
    def subscription(self, subscription_id: str) -> dict[str, Any] | None: ...
    def delete_subscription(self, subscription_id: str, now: datetime) -> bool: ...

    def due(self, now: datetime, limit: int, *, only: str | None = None) -> list[dict[str, Any]]:
        """Deliveries due at `now`, oldest first, none behind an earlier open one of its receivable or customer."""

    def take(self, now: datetime, until: datetime, *, only: str | None = None
             ) -> AbstractContextManager[dict[str, Any] | None]:
        """The first delivery due at `now` that no other sender holds, held until the block ends
        (a lease until `until` where rows cannot be locked); None when none is left."""

    def finish(self, delivery_id: str, status: str, *, attempts: int, tries: int, at: datetime,
               http_status: int | None, error: str | None, next_attempt_at: datetime | None = None) -> None: ...

    def requeue(self, subscription_id: str, delivery_id: str, now: datetime) -> bool: ...
    def deliveries(self, subscription_id: str, *, status: str | None = None, after: tuple[int, int, str] | None = None,
                   limit: int = 50) -> list[dict[str, Any]]: ...
    def delivery(self, subscription_id: str, delivery_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Attempt:
    id: str
    status: str
    http_status: int | None = None
    error: str | None = None


class WebhookSender:
    def __init__(
        self,
        store: DeliveryStore,
        clock: Clock,
        *,
        catch_up: Callable[[], object],
        allow_private: bool = False,
        resolve: Resolve = socket.getaddrinfo,
        max_attempts: int = 8,
        backoff_seconds: float = 30.0,
        backoff_max_seconds: float = 3600.0,
        lease_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.catch_up = catch_up
        self.allow_private = allow_private
        self.resolve = resolve
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.lease_seconds = lease_seconds
        self.timeout_seconds = timeout_seconds
        self.wall_clock = wall_clock  # webhook-timestamp is a transport fact: the real time, even in sandbox mode

    def backoff(self, tries: int) -> timedelta:
        """Wait after the `tries`-th failed try: base × 2^(tries-1), capped."""
        return timedelta(seconds=min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, tries - 1)))

    def run_once(self, limit: int = 100) -> list[Attempt]:
        """Bring the deliveries up to the log, then try what is due, one at a time: a delivered one
        may let the next of its receivable go, which is then due too (at most `limit` tries)."""
        self.catch_up()
        done: list[Attempt] = []
        while len(done) < limit:
            attempt = self.attempt_next()
            if attempt is None:
                break
            done.append(attempt)
        return done

    def attempt_next(self, only: str | None = None) -> Attempt | None:
        """Take the first due delivery (or `only` that one, if due) and try it; None when there is none."""
        now = self.clock.now()
        with self.store.take(now, now + timedelta(seconds=self.lease_seconds), only=only) as row:
            return None if row is None else self.attempt(row, now)

    def attempt(self, row: dict[str, Any], now: datetime) -> Attempt:
        """Try one delivery this sender holds, and write the outcome."""
        attempts, tries = row["attempts"] + 1, row["tries"] + 1
        http_status: int | None = None
        try:
            check_url(row["url"], allow_private=self.allow_private, resolve=self.resolve)
            http_status = self.post(row["url"], row["id"], row["secret"], row["body"].encode("utf-8"))
            error = None if 200 <= http_status < 300 else f"HTTP {http_status}"
        except RuleViolationError as exc:
            error = exc.detail
        except Exception as exc:  # noqa: BLE001 - any failure is a failed try, recorded
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            self.store.finish(row["id"], "delivered", attempts=attempts, tries=tries, at=now, http_status=http_status,
                              error=None)
            return Attempt(row["id"], "delivered", http_status)
        error = error[:1000]
        status = "failed" if tries >= self.max_attempts else "pending"
        retry_at = None if status == "failed" else now + self.backoff(tries)
        log.warning("webhook delivery %s try %d failed: %s", row["id"], tries, error)
        self.store.finish(row["id"], status, attempts=attempts, tries=tries, at=now, http_status=http_status,
                          error=error, next_attempt_at=retry_at)
        return Attempt(row["id"], status, http_status, error)

    def post(self, url: str, message_id: str, secret: str, body: bytes) -> int:
        timestamp = int(self.wall_clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "collections-es-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
        }
        with httpx.Client(timeout=self.timeout_seconds, follow_redirects=False) as client:
            return client.post(url, content=body, headers=headers).status_code


class Webhooks:
    """The use cases of the `/webhooks` routes and `collections-es deliver`."""

    def __init__(self, store: DeliveryStore, sender: WebhookSender, clock: Clock, *,
                 event_types: tuple[str, ...], head: Callable[[], int], refresh: Callable[[], object]) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self.event_types = event_types
        self.head = head
        self.refresh = refresh  # the delivery log reaches the log's head (read-your-writes)

    def subscribe(self, url: str, events: list[str], description: str | None, created_by: str) -> dict[str, Any]:
        """A new subscription to the events after now; its secret is in this answer only."""
        unknown = [e for e in events if e != "*" and e not in self.event_types]
        if unknown:
            raise RuleViolationError(
                "webhook.unknown_event", f"unknown event type(s): {', '.join(unknown)}; see GET /webhooks/event-types",
                field="events",
            )
        check_url(url, allow_private=self.sender.allow_private, resolve=self.sender.resolve)
        row = {
            "id": str(uuid.uuid4()),
            "url": url,
            "events": list(dict.fromkeys(events)),
            "description": description,
            "secret": new_secret(),
            "start_position": self.head(),
            "created_by": created_by,
            "created_at": self.clock.now(),
        }
        self.store.add_subscription(row)
        return row

    def subscriptions(self) -> list[dict[str, Any]]:
        return self.store.subscriptions()

    def get(self, subscription_id: str) -> dict[str, Any]:
        found = self.store.subscription(subscription_id)
        if found is None:
            raise NotFoundError(f"no webhook subscription {subscription_id}")
        return found

    def delete(self, subscription_id: str) -> None:
        """Deleted at once: what it has not delivered yet is cancelled."""
        if not self.store.delete_subscription(subscription_id, self.clock.now()):
            raise NotFoundError(f"no webhook subscription {subscription_id}")

    def deliveries(self, subscription_id: str, *, status: str | None, after: tuple[int, int, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        self.get(subscription_id)
        self.refresh()
        return self.store.deliveries(subscription_id, status=status, after=after, limit=limit)

    def replay(self, subscription_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again by hand: queued now with a fresh count of tries, and tried at once
        unless an earlier delivery of its receivable is still open (then it waits its turn)."""
        self.get(subscription_id)
        if self.store.delivery(subscription_id, delivery_id) is None:
            raise NotFoundError(f"no delivery {delivery_id} of webhook subscription {subscription_id}")
        if not self.store.requeue(subscription_id, delivery_id, self.clock.now()):
            raise RuleViolationError("webhook.delivery_in_flight", "the delivery is being sent right now", field="delivery_id")
        self.sender.attempt_next(only=delivery_id)
        found = self.store.delivery(subscription_id, delivery_id)
        assert found is not None
        return found
