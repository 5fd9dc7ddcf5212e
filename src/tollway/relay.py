"""Relay an upstream response to the client: whole, or as a faithful event stream.

Both run while watching for the client to go away: a disconnect cancels the work at
once, which drops the upstream connection so the provider stops generating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from tollway.asgi import SSE_HEADERS, ClientDisconnected, RawHeaders, Receive, Send
from tollway.dialects.render import render_stream_error
from tollway.errors import TollwayError, UpstreamError
from tollway.metering.stream_meter import StreamMeter
from tollway.providers.transport import UpstreamResponse
from tollway.settings import Dialect
from tollway.sse import EventSplitter

T = TypeVar("T")


@dataclass(slots=True)
class StreamOutcome:
    """What happened while streaming, for logs and metering."""

    events: int = 0
    first_event_at: float | None = None
    error: TollwayError | None = None
    complete: bool = False


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientDisconnected


async def read_whole(upstream: UpstreamResponse) -> bytes:
    """The upstream body; the connection is dropped if the read is cancelled."""
    try:
        return await upstream.read()
    except asyncio.CancelledError:
        upstream.abort()
        raise


async def send_whole(
    send: Send, status: int, body: bytes, content_type: str, headers: RawHeaders
) -> None:
    """Send a complete response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_stream(
    send: Send,
    upstream: UpstreamResponse,
    headers: RawHeaders,
    dialect: Dialect,
    meter: StreamMeter,
    outcome: StreamOutcome,
    finish: Callable[[], Awaitable[None]],
) -> None:
    """Pass SSE events through as they arrive, one flush per event.

    ``finish`` records the call; it runs when the stream's final event arrives and before
    that event is sent (or before an error event), so the record exists before the
    client sees the stream end. Once the first byte has
    reached the client nothing can be retried, so an upstream failure mid-stream becomes
    an error event in the client's dialect.
    """
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    splitter = EventSplitter()
    try:
        async for chunk in upstream.chunks():
            for event in splitter.feed(chunk):
                if outcome.first_event_at is None:
                    outcome.first_event_at = time.perf_counter()
                out = meter.observe(event)
                if meter.finished:
                    await finish()
                if out is not None:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    outcome.events += 1
        if splitter.rest().strip():
            raise UpstreamError("The provider's stream ended in the middle of an event.")
        if not meter.finished:
            raise UpstreamError("The provider's stream ended before its final event.")
        outcome.complete = True
    except UpstreamError as error:
        outcome.error = error
        await finish()
        await send(
            {
                "type": "http.response.body",
                "body": render_stream_error(dialect, error),
                "more_body": True,
            }
        )
    finally:
        if not outcome.complete:
            upstream.abort()
    await finish()
    await send({"type": "http.response.body", "body": b""})
