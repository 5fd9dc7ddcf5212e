"""The server secret and the keys derived from it.

One secret (``secret_key`` or generated into the data dir, mode 0600) yields independent
subkeys by HKDF: one to hash API keys, one to encrypt provider credentials (AES-GCM),
one to chain the audit log. Rotating a purpose never weakens another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from tollway.datadir import ensure_data_dir, ensure_generated
from tollway.settings import Settings

SECRET_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)


class SealError(Exception):
    """Sealed data could not be opened (wrong secret or tampered)."""


def hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 with an all-zero salt (RFC 5869): the standard library's HMAC suffices,
    and the gateway avoids loading a crypto runtime it only needs for sealing."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _derive(secret: bytes, purpose: str) -> bytes:
    return hkdf_sha256(secret, purpose.encode())


def server_secret(settings: Settings) -> str:
    """``secret_key``, or the data dir's generated secret (created once, whole)."""
    ensure_data_dir(settings.data_dir)
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    value, _ = ensure_generated(settings.data_dir / SECRET_FILE, lambda: secrets.token_urlsafe(48))
    return value


@dataclass(frozen=True)
class ServerKeys:
    """Purpose-bound keys derived from the server secret."""

    hashing: bytes
    sealing: bytes
    audit: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerKeys:
        """Derive from ``secret_key`` or the data dir's generated secret."""
        raw = server_secret(settings).encode()
        return cls(
            hashing=_derive(raw, "tollway/api-key-hash/v1"),
            sealing=_derive(raw, "tollway/credential-seal/v1"),
            audit=_derive(raw, "tollway/audit-chain/v1"),
        )

    def hash_key(self, key: str) -> str:
        """The stored form of an API key: HMAC-SHA256 under the hashing key."""
        return hmac.new(self.hashing, key.encode(), hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, context: str) -> str:
        """Encrypt and authenticate ``plaintext``, bound to ``context`` (e.g. a project id)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        sealed = AESGCM(self.sealing).encrypt(nonce, plaintext, context.encode())
        return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, context: str) -> bytes:
        """Decrypt what ``seal`` produced for the same context."""
        if not token.startswith("v1:"):
            raise SealError("unknown sealed-data version")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        raw = base64.urlsafe_b64decode(token[3:])
        try:
            return AESGCM(self.sealing).decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag:
            raise SealError("sealed data failed authentication") from None
