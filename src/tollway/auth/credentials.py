"""Find the caller's key in the header their SDK puts it in, and check it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.auth.directory import KeyEntry

# Where each SDK sends its key: OpenAI (Authorization: Bearer), Anthropic (x-api-key),
# Azure OpenAI (api-key), Gemini (x-goog-api-key).
_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    kind: str
    key_id: str | None = None
    key: KeyEntry | None = None


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
