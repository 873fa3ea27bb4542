"""Portal links: signed, expiring, revocable, for one customer alone (ADR 0055).

A link is `/portal/<token>`; the token is `p1.<payload>.<signature>` where the payload is the
base64url of `<customer_id>\\n<generation>\\n<expires, Unix seconds>` and the signature the
base64url of HMAC-SHA256 over `p1.<payload>` with the portal key. Nothing is stored per link:
an altered token fails the signature, an old one its expiry, and a revoked one its generation —
each customer has a generation number (a row of `portal_links`, 0 when none), every link
carries the generation it was issued under, and revoking a customer's links moves the number
on. The key is `COLLECTIONS_PORTAL_SECRET`, or else a random one the first process stores in
the database for every process to share.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

#: Each customer's link generation: links issued under an older one are revoked.
portal_links = sa.Table(
    "portal_links",
    metadata,
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_by", sa.String(128), nullable=True),
)

#: The key links are signed with, when no COLLECTIONS_PORTAL_SECRET is set (one row).
portal_key = sa.Table(
    "portal_key",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
)

VERSION = "p1"
MAX_TOKEN_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Link:
    """What a valid token says."""

    customer_id: str
    generation: int
    expires_at: datetime
    token: str

    @property
    def path(self) -> str:
        return f"/portal/{self.token}"

    @property
    def key(self) -> str:
        """A short name of this link for rate limits and logs (never the token itself)."""
        return hashlib.sha256(self.token.encode("ascii")).hexdigest()[:24]


class PortalLinks:
    """Issues, reads and revokes the customers' portal links."""

    def __init__(self, engine: sa.Engine, secret: str | None = None) -> None:
        self.engine = engine
        metadata.create_all(engine)
        secret = secret or self._stored_secret()
        self._key = hashlib.sha256(b"collections-es portal link\n" + secret.encode("utf-8")).digest()

    def _stored_secret(self) -> str:
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(portal_key.c.secret).where(portal_key.c.id == 1)).scalar()
        if found is not None:
            return found
        try:
            with self.engine.begin() as conn:
                conn.execute(portal_key.insert().values(id=1, secret=secrets.token_urlsafe(48)))
        except sa.exc.IntegrityError:
            pass  # another process stored one first: use theirs
        with self.engine.begin() as conn:
            return conn.execute(sa.select(portal_key.c.secret).where(portal_key.c.id == 1)).scalar_one()

    def _sign(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode("utf-8", "replace"), hashlib.sha256).digest())

    def csrf(self, link: Link, nonce: str) -> str:
        """The CSRF token of a form on `link`'s page, bound to the browser's nonce cookie."""
        return self._sign(f"csrf\n{link.token}\n{nonce}")

    def generation(self, customer_id: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(portal_links.c.generation).where(portal_links.c.customer_id == customer_id)
            ).scalar()
        return found or 0

    def issue(self, customer_id: str, now: datetime, valid_days: int) -> Link:
        """A link to `customer_id`'s page, valid `valid_days` days from `now`."""
        expires_at = (now + timedelta(days=valid_days)).astimezone(UTC).replace(microsecond=0)
        generation = self.generation(customer_id)
        payload = _b64(f"{customer_id}\n{generation}\n{int(expires_at.timestamp())}".encode())
        signed = f"{VERSION}.{payload}"
        token = f"{signed}.{self._sign(signed)}"
        return Link(customer_id, generation, expires_at, token)

    def revoke(self, customer_id: str, now: datetime, by: str) -> int:
        """Revoke every link issued to the customer so far; the new generation."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                portal_links.update()
                .where(portal_links.c.customer_id == customer_id)
                .values(generation=portal_links.c.generation + 1, revoked_at=now, revoked_by=by)
            ).rowcount
            if not updated:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            portal_links.insert().values(customer_id=customer_id, generation=1, revoked_at=now, revoked_by=by)
                        )
                except sa.exc.IntegrityError:  # revoked at the same moment elsewhere: move it on once more
                    conn.execute(
                        portal_links.update()
                        .where(portal_links.c.customer_id == customer_id)
                        .values(generation=portal_links.c.generation + 1, revoked_at=now, revoked_by=by)
                    )
        return self.generation(customer_id)

    def read(self, token: str, now: datetime) -> Link | None:
        """The link a token stands for, or None when it is altered, expired or revoked
        (the caller answers all three alike: 404)."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        version, payload, signature = token.split(".")
        if version != VERSION or not hmac.compare_digest(self._sign(f"{version}.{payload}"), signature):
            return None
        try:
            customer_id, generation, expires = _unb64(payload).decode("utf-8").split("\n")
            expires_at = datetime.fromtimestamp(int(expires), UTC)
            link = Link(customer_id, int(generation), expires_at, token)
        except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
            return None
        if now >= link.expires_at or link.generation != self.generation(customer_id):
            return None
        return link


def message_link(links: PortalLinks, public_url: str | None, customer_id: str, now: datetime, policy: Any) -> str | None:
    """The link a message or letter to the customer carries: one when the policy's portal section
    says so (`links_in_messages`) and the service knows its public address, else None."""
    if not public_url or not policy.portal.links_in_messages:
        return None
    return public_url.rstrip("/") + links.issue(customer_id, now, policy.portal.link_valid_days).path
