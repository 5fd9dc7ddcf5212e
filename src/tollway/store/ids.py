"""Identifiers and secrets minted by the gateway."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

VIRTUAL_KEY_PREFIX = "sk-tw-"
ADMIN_KEY_PREFIX = "sk-tw-admin-"
DISPLAY_PREFIX_CHARS = 12


def new_id(kind: str) -> str:
    """A random, URL-safe identifier such as ``key_3f9a...``."""
    return f"{kind}_{secrets.token_hex(8)}"


def new_virtual_key() -> str:
    """A client key: recognizable prefix plus 256 random bits, nothing else inside."""
    return VIRTUAL_KEY_PREFIX + secrets.token_urlsafe(32)


def new_admin_key() -> str:
    """A management key."""
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    """What may be shown to identify a key: its first characters only."""
    return key[:DISPLAY_PREFIX_CHARS]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_utc(ts: datetime | None) -> datetime | None:
    """Any timestamp as aware UTC (naive ones are taken as UTC). SQLite keeps wall-clock
    text, so every stored or compared time must be UTC first."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def as_utc(ts: datetime | None) -> datetime | None:
    """Treat a naive timestamp from SQLite as UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
