"""What an event looks like: ``{"id", "type", "created_at", "data"}``, and its id.

Ids are for deduplication. An event that more than one process (or a restarted one)
could produce carries an id derived from what it is about, so both copies share it:
``evt_`` and 32 hex digits of SHA-256 over the type and its subject (a request id, a key
id, a budget's owner, period, limit and threshold). Only events that one process alone
can observe (a circuit breaker of its own) get a random id.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_COMPLETED = "request.completed"
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
KEY_EXPIRED = "key.expired"
BUDGET_THRESHOLD = "budget.threshold"
CIRCUIT_OPENED = "circuit.opened"
CIRCUIT_CLOSED = "circuit.closed"
RECORD_QUARANTINED = "record.quarantined"
EVENT_TYPES = (
    REQUEST_COMPLETED,
    KEY_CREATED,
    KEY_REVOKED,
    KEY_EXPIRED,
    BUDGET_THRESHOLD,
    CIRCUIT_OPENED,
    CIRCUIT_CLOSED,
    RECORD_QUARANTINED,
)


def event_id(event_type: str, *subject: str) -> str:
    """The id of the event of ``event_type`` about ``subject``: the same everywhere."""
    text = "\x1f".join((event_type, *subject)).encode()
    return "evt_" + hashlib.sha256(text).hexdigest()[:32]


def random_id() -> str:
    """An id for an event only one process can produce."""
    return "evt_" + secrets.token_hex(16)


def encode(event_type: str, data: dict[str, Any], id_: str) -> bytes:
    """The event's JSON text (one line: no newline inside)."""
    # orjson writes the datetime itself (RFC 3339, as isoformat() would), in a third of
    # the time isoformat() takes.
    envelope = {"id": id_, "type": event_type, "created_at": datetime.now(UTC), "data": data}
    return orjson.dumps(envelope, default=str)
