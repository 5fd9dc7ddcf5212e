"""The translation interface.

A ``Translator`` is built per call from the client's request body. It turns that body
into the upstream's request body, a complete upstream response into the client's
response, and (through ``stream()``) upstream stream events into client stream events.
Stream translators are stateful: they see every upstream event in order, exactly once,
each event whole (the pipeline splits the byte stream into events first), and emit zero
or more complete client events, each ending with a blank line.

Parameters that cannot be expressed upstream follow one documented rule per parameter:
dropped with a log line (``dropped()``), or rejected with a 400 naming the parameter.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import TollwayError

log = logging.getLogger("tollway.translate")
Body = dict[str, Any]


class StreamTranslator(ABC):
    """Upstream events in, client events out, for one stream."""

    @abstractmethod
    def feed(self, event: bytes) -> list[bytes]:
        """Translate one complete upstream event."""

    @abstractmethod
    def finish(self) -> list[bytes]:
        """Client events still owed once the upstream stream has ended normally."""

    def failure(self, error: TollwayError) -> list[bytes] | None:
        """Client events reporting ``error`` met mid-stream, when this translator has its
        own way to say it (None: the dialect's generic error event)."""
        return None


class Translator(ABC):
    """Client endpoint -> upstream endpoint, for one call."""

    client_endpoint: ClassVar[Endpoint]
    upstream_endpoint: ClassVar[Endpoint]

    def __init__(self, client_body: Body) -> None:
        self.client_body = client_body

    @abstractmethod
    def request(self, upstream_model: str) -> Body:
        """The upstream request body (with ``upstream_model`` as its model)."""

    @abstractmethod
    def response(self, upstream_body: Body) -> Body:
        """The client's response body from a successful upstream body."""

    @abstractmethod
    def stream(self) -> StreamTranslator:
        """A translator for this call's stream."""


def sse(data: Body | str, event: str | None = None) -> bytes:
    """One SSE event: optional ``event:`` line, one ``data:`` line, blank line."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


def event_json(event: bytes) -> Any:
    """The JSON of an SSE event's data lines (None when there is none or it is not JSON)."""
    lines = [
        line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")
    ]
    if not lines:
        return None
    try:
        return orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None


def dropped(parameter: str, target: str) -> None:
    """Log a parameter the target API cannot express and that is safe to drop."""
    log.info(
        "parameter dropped in translation",
        extra={"fields": {"parameter": parameter, "target": target}},
    )
