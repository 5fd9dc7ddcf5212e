"""Find the caller's key in the header their SDK puts it in, and check it."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from tollway.errors import Unauthorized

# Where each SDK sends its key: OpenAI (Authorization: Bearer), Anthropic (x-api-key),
# Azure OpenAI (api-key), Gemini (x-goog-api-key).
_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    kind: str
    key_id: str | None = None


def presented_key(headers: dict[str, str]) -> str | None:
    """The key the client sent, from whichever supported header carries it."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in _KEY_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip()
    return None


class Authenticator:
    """Checks presented keys; the master key is always accepted on proxy routes."""

    def __init__(self, master_key: str) -> None:
        self._master = master_key.encode()

    def authenticate(self, headers: dict[str, str]) -> Principal:
        """The caller, or Unauthorized."""
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(
                "No API key provided. Send it as 'Authorization: Bearer <key>' or 'x-api-key'."
            )
        if hmac.compare_digest(key.encode(), self._master):
            return Principal(kind="master")
        raise Unauthorized("Invalid API key.")
