"""Incremental Server-Sent Events framing over arbitrary network chunks.

Events end at a blank line (``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r``, see
https://html.spec.whatwg.org/multipage/server-sent-events.html). An event split across
two reads is held until its end arrives, so each complete event is flushed on its own.

An event still arriving is kept as a list of chunks and joined once, when its end is
seen: a huge event in many small chunks costs time linear in its size. No event may be
larger than the splitter's limit (``max_event_bytes``); past it the stream fails.
"""

from __future__ import annotations

import re

from tollway.errors import UpstreamError

EVENT_TOO_LARGE = "upstream_event_too_large"
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# The longest boundary minus one: a boundary split across chunks starts this far back.
_OVERLAP = 3


def event_too_large(limit: int) -> UpstreamError:
    """The error for a stream event over ``limit`` bytes."""
    return UpstreamError(
        f"The provider sent a stream event larger than {limit:,} bytes, the gateway's "
        "limit (max_event_bytes).",
        code=EVENT_TOO_LARGE,
    )


class EventSplitter:
    """Feed bytes in, get whole events (each with its terminating blank line) out."""

    __slots__ = ("_failed", "_limit", "_pending")

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._limit = max_event_bytes
        # The start of an event whose end has not come (a bytearray grows in place).
        self._pending = bytearray()
        # An event over the limit was seen; raised once the events before it are out.
        self._failed: UpstreamError | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events now available, in order. An event over the limit raises, on
        this call or (when complete events came before it) on the next."""
        if self._failed is not None:
            raise self._failed
        pending = self._pending
        if not pending:
            data, start = chunk, 0
        else:
            # No boundary lies wholly inside the pending bytes, so one can only start in
            # their last few: search there and in the new chunk, and copy only on a hit.
            start = max(len(pending) - _OVERLAP, 0)
            if _BOUNDARY.search(pending[start:] + chunk) is None:
                pending += chunk
                return self._bounded([], len(pending))
            pending += chunk
            data = bytes(pending)
            self._pending = bytearray()
        events: list[bytes] = []
        end = 0
        for match in _BOUNDARY.finditer(data, start):
            events.append(data[end : match.end()])
            end = match.end()
        if end < len(data):
            self._pending += data[end:]
        return self._bounded(events, len(data))

    def _bounded(self, events: list[bytes], size: int) -> list[bytes]:
        """``events`` up to the first one over the limit (counting the pending one)."""
        limit = self._limit
        if limit is None or size <= limit:
            return events  # nothing seen this time can be over the limit
        for index, event in enumerate(events):
            if len(event) > limit:
                events = events[:index]
                break
        else:
            if len(self._pending) <= limit:
                return events
        self._pending = bytearray()  # never to be delivered: free it now
        self._failed = event_too_large(limit)
        if not events:
            raise self._failed
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a truncated event at end of stream)."""
        if self._failed is not None:
            raise self._failed
        rest = bytes(self._pending)
        self._pending = bytearray()
        return rest
