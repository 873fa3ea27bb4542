"""API keys: stored as SHA-256 of the token, in the database or a TOML file.

Tokens are 256-bit random strings, so a plain SHA-256 is the right hash: there
is nothing to brute-force (ADR 0005).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from ..domain.errors import CollectionsError, NotFoundError
from ..domain.trail import Actor

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


class KeyFileError(CollectionsError):
    pass


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: int
    actor: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class KeyHolder:
    """Who a presented token authenticates, and which key it is (`db:<id>` or `file:<digest prefix>`),
    so limits can be kept per key."""

    key_id: str
    actor: Actor


class ApiKeyStore:
    """Keys in the database (and a file). An active key found in the database is remembered
    for `cache_seconds` (ADR 0064), so a request costs no query; a key revoked through this
    store is forgotten at once, one revoked by another process within `cache_seconds`."""

    def __init__(
        self,
        engine: sa.Engine,
        roles: tuple[str, ...],
        keys_file: Path | None = None,
        *,
        cache_seconds: float = 0.0,
        ticker: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.roles = roles
        metadata.create_all(engine)
        self.file_keys = _load_file(keys_file, roles) if keys_file else {}
        self.cache_seconds = cache_seconds
        self.ticker = ticker  # monotonic seconds; tests move it instead of sleeping
        self._cache: dict[str, tuple[float, KeyHolder]] = {}
        self._cache_lock = threading.Lock()

    def add(self, actor: str, role: str, now: datetime) -> str:
        """Create a key and return its token; only its hash is kept."""
        if role not in self.roles:
            raise KeyFileError(f"unknown role '{role}'; roles: {', '.join(self.roles)}")
        if not actor.strip():
            raise KeyFileError("actor must not be empty")
        token = "ces_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(actor=actor, role=role, token_sha256=token_digest(token), created_at=now))
        return token

    def list(self) -> list[ApiKey]:
        with self.engine.execution_options(read_only=True).connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).all()
        return [ApiKey(r.id, r.actor, r.role, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, key_id: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
            )
        if done.rowcount != 1:
            raise NotFoundError(f"no active key {key_id}")
        self.forget()

    def forget(self) -> None:
        """Drop every remembered key: the next request of each asks the database."""
        with self._cache_lock:
            self._cache.clear()

    def authenticate(self, token: str) -> Actor | None:
        holder = self.identify(token)
        return holder.actor if holder else None

    def identify(self, token: str) -> KeyHolder | None:
        """The active key the token belongs to. The database is asked at most once every
        `cache_seconds` per key, so a revocation by another process is effective within
        that time (at once when revoked through this store)."""
        return self.identify_digest(token_digest(token))

    def identify_digest(self, digest: str) -> KeyHolder | None:
        """As `identify`, by the token's SHA-256 (what a console session keeps of the key it
        was opened with, so a revoked key ends its sessions at their next request)."""
        if digest in self.file_keys:
            return KeyHolder(f"file:{digest[:16]}", self.file_keys[digest])
        if self.cache_seconds > 0:
            now = self.ticker()
            remembered = self._cache.get(digest)
            if remembered is not None and now - remembered[0] < self.cache_seconds:
                return remembered[1]
            holder = self._lookup(digest)
            with self._cache_lock:
                if holder is None:
                    self._cache.pop(digest, None)  # unknown tokens are never remembered
                else:
                    if len(self._cache) >= 10_000:  # bounded: forget everyone rather than grow
                        self._cache.clear()
                    self._cache[digest] = (now, holder)
            return holder
        return self._lookup(digest)

    def _lookup(self, digest: str) -> KeyHolder | None:
        with self.engine.execution_options(read_only=True).connect() as conn:
            row = conn.execute(
                sa.select(api_keys.c.id, api_keys.c.actor, api_keys.c.role).where(
                    api_keys.c.token_sha256 == digest, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        return KeyHolder(f"db:{row.id}", Actor(row.actor, row.role)) if row else None


def _load_file(path: Path, roles: tuple[str, ...]) -> dict[str, Actor]:
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"{path}: not valid TOML: {exc}") from None
    keys: dict[str, Actor] = {}
    for i, entry in enumerate(data.get("keys", [])):
        where = f"{path}: keys[{i}]"
        actor, role, digest = entry.get("actor"), entry.get("role"), entry.get("token_sha256", "")
        if not actor or role not in roles:
            raise KeyFileError(f"{where}: needs an actor and a role among {', '.join(roles)}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KeyFileError(f"{where}: token_sha256 must be 64 lowercase hex digits")
        keys[digest] = Actor(actor, role)
    return keys
