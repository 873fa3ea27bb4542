"""Console sessions, kept in the database (ADR 0040).

A session is opened by signing in with an API key. The browser holds a random
session id in an HttpOnly cookie; the table keeps only its SHA-256, with the
SHA-256 of the API key it was opened with (so that each request can ask the key
store whether the key is still valid: revoking the key ends its sessions), when
it began and when it was last used (idle and absolute expiry), the reader's
language and one flash message for the next page.

Its clock is the wall clock (a transport fact, like a webhook's timestamp), not
the service's clock: moving the sandbox clock a month forward must not sign
everybody out. Tests inject their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..adapters.cipher import SealedText

metadata = sa.MetaData()

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lang", sa.String(8), nullable=True),
    # A message may quote what a person typed (a refusal of their note): encrypted with a key (ADR 0030).
    sa.Column("flash", SealedText, nullable=True),
)

#: A request refreshes `seen_at` at most this often (one write a minute, not one per page).
TOUCH_EVERY = timedelta(seconds=60)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    """A live session as a request sees it. `secret` is the cookie's value (never stored)."""

    secret: str
    key_sha256: str
    actor: str
    role: str
    created_at: datetime
    seen_at: datetime
    lang: str | None
    flash: dict[str, Any] | None

    @property
    def csrf_token(self) -> str:
        """The token every form of this session carries: derived from the session's secret,
        so it needs no storage, differs per session and does not reveal the secret."""
        return hmac.new(self.secret.encode("utf-8"), b"console-csrf", hashlib.sha256).hexdigest()

    def is_csrf_token(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token.encode(), token.encode("utf-8", "replace"))


class SessionStore:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        idle: timedelta,
        lifetime: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.idle = idle
        self.lifetime = lifetime
        self.now = now
        metadata.create_all(engine)

    def open(self, key_sha256: str, actor: str, role: str, lang: str | None = None) -> Session:
        """A new session for the holder of a key; expired sessions are swept on the way."""
        secret = secrets.token_urlsafe(32)
        now = self.now()
        with self.engine.begin() as conn:
            conn.execute(console_sessions.delete().where(self._expired(now)))
            conn.execute(
                console_sessions.insert().values(
                    id_sha256=_digest(secret), key_sha256=key_sha256, actor=actor, role=role,
                    created_at=now, seen_at=now, lang=lang,
                )
            )
        return Session(secret, key_sha256, actor, role, now, now, lang, None)

    def _expired(self, now: datetime) -> Any:
        c = console_sessions.c
        return sa.or_(c.seen_at <= now - self.idle, c.created_at <= now - self.lifetime)

    def find(self, secret: str | None) -> Session | None:
        """The live session a cookie names (its last use refreshed), or None: unknown, idle
        too long or too old (an expired one is deleted)."""
        if not secret or len(secret) > 128:
            return None
        now = self.now()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(console_sessions).where(console_sessions.c.id_sha256 == _digest(secret))).first()
            if row is None:
                return None
            created, seen = _aware(row.created_at), _aware(row.seen_at)
            if now - seen >= self.idle or now - created >= self.lifetime:
                conn.execute(console_sessions.delete().where(console_sessions.c.id_sha256 == row.id_sha256))
                return None
            if now - seen >= TOUCH_EVERY:
                conn.execute(
                    console_sessions.update().where(console_sessions.c.id_sha256 == row.id_sha256).values(seen_at=now)
                )
                seen = now
        flash = json.loads(row.flash) if row.flash else None
        return Session(secret, row.key_sha256, row.actor, row.role, created, seen, row.lang, flash)

    def close(self, secret: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(console_sessions.delete().where(console_sessions.c.id_sha256 == _digest(secret)))

    def close_for_key(self, key_sha256: str) -> None:
        """End every session opened with a key (it was revoked)."""
        with self.engine.begin() as conn:
            conn.execute(console_sessions.delete().where(console_sessions.c.key_sha256 == key_sha256))

    def set_lang(self, secret: str, lang: str) -> None:
        self._update(secret, lang=lang)

    def set_flash(self, secret: str, flash: dict[str, Any] | None) -> None:
        """The message the next page shows once (None clears it)."""
        self._update(secret, flash=json.dumps(flash, ensure_ascii=False) if flash else None)

    def _update(self, secret: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(console_sessions.update().where(console_sessions.c.id_sha256 == _digest(secret)).values(**values))
