"""Encryption at rest (ADR 0030): one AES-GCM key, COLLECTIONS_CIPHER_KEY.

- The event store: eventsourcing's `AESCipher` encrypts every stored event and
  snapshot (`cipher_env`).
- Read models: columns that can hold contact details are `SealedText`; through
  an engine given the cipher (`seal_engine`) they are written encrypted and read
  back in clear, so projections and queries handle plain strings.
- Start-up: `check_event_store` decodes the first and the last stored event, so a
  wrong key, a missing key, or a key set on an unencrypted database stops the
  process with a clear error instead of serving garbage or failing later.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import sqlalchemy as sa
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from ..domain.errors import CollectionsError

CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"
SETTING = "COLLECTIONS_CIPHER_KEY"
KEY_BYTES = 32
# A sealed read-model value: this prefix, then base64(nonce + tag + ciphertext).
SEALED_PREFIX = "aes1:"
_DIALECT_ATTRIBUTE = "collections_es_cipher"


class CipherKeyError(CollectionsError):
    """The key does not fit the database: wrong, missing, or set on an unencrypted store."""


def new_key() -> str:
    """A fresh 256-bit key, base64 (what COLLECTIONS_CIPHER_KEY takes)."""
    return AESCipher.create_key(KEY_BYTES)


def check_key(key: str) -> None:
    """Raise ValueError (naming the setting, never echoing the key) unless `key` is a usable AES key."""
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(
            f"{SETTING} is not base64; generate a key with `collections-es keys cipher`"
        ) from None
    if len(raw) not in AESCipher.KEY_SIZES:
        raise ValueError(
            f"{SETTING} decodes to {len(raw)} bytes; an AES key is 16, 24 or 32 bytes "
            "(generate one with `collections-es keys cipher`)"
        )


def make_cipher(key: str) -> AESCipher:
    return AESCipher(Environment(env={AESCipher.CIPHER_KEY: key}))


def cipher_env(key: str | None) -> dict[str, str]:
    """eventsourcing settings that encrypt stored events with `key` (none without a key)."""
    if not key:
        return {}
    return {"CIPHER_TOPIC": CIPHER_TOPIC, "CIPHER_KEY": key}


# ---- read-model columns -------------------------------------------------------------


def seal_engine(engine: sa.Engine, cipher: AESCipher | None) -> sa.Engine:
    """Give `engine` the cipher its `SealedText` columns use (None: stored in clear).
    The dialect is the engine's own object, shared by every connection and
    execution-option variant of it, and by nothing else."""
    setattr(engine.dialect, _DIALECT_ATTRIBUTE, cipher)
    return engine


def _cipher_of(dialect: Any) -> AESCipher | None:
    return getattr(dialect, _DIALECT_ATTRIBUTE, None)


def seal(cipher: AESCipher, value: str) -> str:
    return SEALED_PREFIX + base64.b64encode(cipher.encrypt(value.encode("utf-8"))).decode("ascii")


def unseal(cipher: AESCipher | None, value: str) -> str:
    if not value.startswith(SEALED_PREFIX):
        return value  # written in clear (no key then)
    if cipher is None:
        raise CipherKeyError(f"a read-model value is encrypted but {SETTING} is not set")
    try:
        return cipher.decrypt(base64.b64decode(value[len(SEALED_PREFIX) :])).decode("utf-8")
    except (ValueError, binascii.Error):
        raise CipherKeyError(f"a read-model value does not decrypt with this {SETTING} (another key?)") from None


class SealedText(sa.types.TypeDecorator[str]):
    """Text that may hold contact details: encrypted at rest when the engine has a cipher.

    Equality filters on such a column cannot work (each value has its own nonce):
    no query filters or sorts by one."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        cipher = _cipher_of(dialect)
        if value is None or cipher is None:
            return value
        return seal(cipher, value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return unseal(_cipher_of(dialect), value)


# ---- the start-up check -------------------------------------------------------------


def check_event_store(app: Any) -> None:
    """Decode the first and the last stored event with the app's cipher (if any).

    Raises CipherKeyError, naming COLLECTIONS_CIPHER_KEY, when they do not decode:
    with a key, the store is either unencrypted or encrypted with another key;
    without one, it is encrypted. An empty store passes (its first event will be
    written with the configured key)."""
    recorder = app.recorder
    last = recorder.max_notification_id()
    if not last:
        return
    first = recorder.select_notifications(start=None, limit=1)
    latest = recorder.select_notifications(start=last, limit=1)
    for notification in [*first, *latest]:
        try:
            app.mapper.to_domain_event(notification)
        except Exception:  # noqa: BLE001 - any failure to decode is diagnosed below
            raise CipherKeyError(_diagnose(notification.state, app.mapper.cipher)) from None


def _is_json(state: bytes) -> bool:
    try:
        json.loads(state)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _diagnose(state: bytes, cipher: Any) -> str:
    if cipher is not None:
        try:
            cipher.decrypt(state)
        except ValueError:
            if _is_json(state):
                return (
                    f"{SETTING} is set but this database holds unencrypted events; a key cannot be added to an "
                    f"existing database (README, Operations): unset {SETTING}, or start a new database with it"
                )
            return f"{SETTING} does not decrypt this database's events: it is not the key they were written with"
    elif not _is_json(state):
        return f"this database's events are encrypted (or damaged): set {SETTING} to the key they were written with"
    return "a stored event does not decode; `collections-es verify` reports which and how"
