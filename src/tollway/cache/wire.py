"""The cache at the ASGI boundary: record what a client was sent, send an entry again.

``AnswerRecorder`` wraps the ``send`` a call answers through and keeps a bounded copy of the
answer (status, content type, body or events), so an answer is recorded exactly as the
client got it, translated or not, without the relay knowing about the cache.
``send_entry`` answers a call from an entry, whole or streamed.
"""

from __future__ import annotations

from tollway.asgi import SSE_HEADERS, Message, RawHeaders, Send
from tollway.cache.entry import STREAMED, Entry, from_body, from_stream
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.validate import Payload
from tollway.metering.usage import Usage
from tollway.relay import send_whole
from tollway.sse import EventSplitter

_SSE = "text/event-stream"


class AnswerRecorder:
    """An ASGI ``send`` that passes every message on and keeps a copy of the answer,
    up to ``max_bytes`` (past that, nothing: the answer is too large to cache)."""

    __slots__ = ("_chunks", "_max", "_send", "content_type", "ended", "overflow", "size",
                 "status")  # fmt: skip

    def __init__(self, send: Send, max_bytes: int) -> None:
        self._send = send
        self._max = max_bytes
        self._chunks: list[bytes] = []
        self.status = 0
        self.content_type = ""
        self.size = 0
        self.overflow = False
        self.ended = False

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type":
                    self.content_type = value.decode("latin-1")
        elif kind == "http.response.body":
            chunk = message.get("body", b"")
            if chunk and not self.overflow:
                self.size += len(chunk)
                if self.size > self._max:
                    self.overflow, self._chunks = True, []
                else:
                    self._chunks.append(chunk)
            self.ended = self.ended or not message.get("more_body", False)

    def entry(self, endpoint: Endpoint, usage: Usage | None) -> Entry | None:
        """The recorded answer as an entry, or None (not sent whole, too large, an
        error, a stream that failed or never ended)."""
        if self.overflow or not self.ended or self.status != 200:
            return None
        data = b"".join(self._chunks)
        if self.content_type.lower().startswith(_SSE):
            # Split again: a message may hold several events (an error's, say).
            splitter = EventSplitter()
            events = splitter.feed(data)
            if splitter.rest().strip():
                return None
            return from_stream(endpoint, events, usage, self.status)
        return from_body(endpoint, data, usage, self.content_type, self.status)


async def send_entry(
    send: Send, entry: Entry, stream: bool, payload: Payload, headers: RawHeaders
) -> None:
    """Answer this call from ``entry``, streamed when the client asked for a stream.
    Everything is prepared before the first message, so a ValueError (an entry that
    cannot be replayed: serve a miss) leaves the response unstarted."""
    if stream and entry.endpoint in STREAMED:
        events = entry.stream(payload)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send_whole(send, entry.status, entry.whole(payload), entry.content_type, headers)
