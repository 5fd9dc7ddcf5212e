"""Incremental Server-Sent Events framing over arbitrary network chunks.

Events end at a blank line (``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r``, see
https://html.spec.whatwg.org/multipage/server-sent-events.html). An event split across
two reads is held until its end arrives, so each complete event is flushed on its own.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventSplitter:
    """Feed bytes in, get whole events (each with its terminating blank line) out."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events now available, in order."""
        data = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        self._buffer = data[start:]
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a truncated event at end of stream)."""
        rest, self._buffer = self._buffer, b""
        return rest
