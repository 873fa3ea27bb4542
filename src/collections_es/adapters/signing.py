"""Ed25519 signatures for evidence bundles (ADR 0046), through `cryptography`.

COLLECTIONS_SIGNING_KEY holds the private key: base64 of its 32 raw bytes (what
`collections-es keys signing` prints) or a PEM (PKCS#8, unencrypted). It is checked
when the settings load; an error names the setting and never echoes the value.
The public key is published as PEM (`GET /audit/public-key`) and identified by its
fingerprint: SHA-256 (hex) of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SETTING = "COLLECTIONS_SIGNING_KEY"
ALGORITHM = "Ed25519"


def new_key() -> str:
    """A fresh private key: base64 of its 32 raw bytes (what COLLECTIONS_SIGNING_KEY takes)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


def load_private_key(value: str) -> Ed25519PrivateKey:
    """The private key COLLECTIONS_SIGNING_KEY holds; ValueError naming the setting (never the value)."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ValueError(f"{SETTING} is a PEM that does not hold an unencrypted private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{SETTING} holds a private key that is not Ed25519")
        return key
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(
            f"{SETTING} is neither base64 nor PEM; generate a key with `collections-es keys signing`"
        ) from None
    if len(raw) != 32:
        raise ValueError(
            f"{SETTING} decodes to {len(raw)} bytes; an Ed25519 private key is 32 bytes "
            "(generate one with `collections-es keys signing`)"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_pem(pem: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM; ValueError when it is not an Ed25519 public key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data.strip() + b"\n")
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the public key's 32 raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def is_valid(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


class Signer:
    """Signs with the configured private key; tells its public key."""

    algorithm = ALGORITHM

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.public_pem = public_pem(self.public_key)
        self.fingerprint = fingerprint(self.public_key)

    @classmethod
    def from_setting(cls, value: str | None) -> Signer | None:
        return None if not value else cls(load_private_key(value))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)
