"""Relay an upstream response to the client: whole, or as a faithful event stream.

Both run while watching for the client to go away: a disconnect cancels the work at
once, which drops the upstream connection so the provider stops generating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tollway.asgi import (
    SSE_HEADERS,
    ClientDisconnected,
    RawHeaders,
    Receive,
    ResponseState,
    Send,
)
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.render import render_stream_failure
from tollway.errors import TollwayError, UpstreamError
from tollway.guards.response import ResponseScreen
from tollway.metering.stream_meter import StreamMeter
from tollway.providers.transport import UpstreamResponse
from tollway.translate.base import StreamTranslator

T = TypeVar("T")


@dataclass(slots=True)
class StreamOutcome:
    """What happened while streaming, for logs and metering."""

    events: int = 0
    first_event_at: float | None = None
    error: TollwayError | None = None
    complete: bool = False


async def until_disconnect(
    receive: Receive, state: ResponseState, work: Callable[[], Awaitable[T]]
) -> T:
    """Run ``work()``; if the client disconnects before the answer is delivered, cancel
    it at once (dropping the upstream call) and raise ClientDisconnected.

    One watcher task per request: the work runs in the caller's own task, which the
    watcher cancels. After the last body message the server reports every connection
    as gone, so the watcher stands down once the response is complete, and a client
    that hangs up right after a stream's final event has been served, not cut.
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not state.delivered:
                    gone = True
                    current.cancel()
                return

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work()
    except asyncio.CancelledError:
        if gone:
            current.uncancel()
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()


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
    events: AsyncIterator[bytes],
    headers: RawHeaders,
    endpoint: Endpoint,
    meter: StreamMeter,
    translator: StreamTranslator | None,
    outcome: StreamOutcome,
    finish: Callable[[], Awaitable[None]],
    error_in: Callable[[bytes], UpstreamError | None],
    state: ResponseState,
    screen: ResponseScreen | None = None,
) -> None:
    """Pass SSE events through as they arrive, one flush per event (translated to the
    client's dialect when a translator is given).

    Nothing is sent until the first upstream event has arrived, so a stream that fails
    before it raises UpstreamError and may still be retried. After that nothing can be
    retried: an upstream failure becomes an error event in the client's dialect.
    ``finish`` records the call; it runs when the final upstream event arrives and before
    the client is sent the end of the stream. ``error_in`` recognizes the upstream's own
    error events: one as the first event is raised (retryable, nothing was sent); later
    ones end the stream with one error event in the client's dialect, redacted.
    ``screen`` (guards) rewrites the client's events before they go out, and before
    ``finish`` records the call, so its decisions are in the record.
    """
    iterator = aiter(events)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        upstream.abort()
        raise UpstreamError("The provider's stream ended before its first event.") from None
    except BaseException:
        upstream.abort()
        raise
    failure = error_in(first)
    if failure is not None:
        upstream.abort()
        raise failure
    outcome.first_event_at = time.perf_counter()
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    try:
        event: bytes | None = first
        while event is not None:
            failure = error_in(event)
            if failure is not None:
                raise (
                    failure
                    if isinstance(failure, UpstreamError)
                    else UpstreamError(failure.message)
                )
            out = meter.observe(event)
            chunks = translator.feed(event) if translator is not None else [out] if out else []
            if screen is not None:
                chunks = screen.events(chunks)
            if meter.finished:
                await finish()
            for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                outcome.events += 1
            if meter.finished:
                state.delivered = True  # the client has the whole answer
            event = await anext(iterator, None)
        if not meter.finished:
            raise UpstreamError("The provider's stream ended before its final event.")
        chunks = translator.finish() if translator is not None else []
        if screen is not None:
            chunks = screen.events(chunks) + screen.close()
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        outcome.complete = True
    except UpstreamError as error:
        outcome.error = error
        held = screen.close() if screen is not None else []
        await finish()
        closing = translator.failure(error) if translator is not None else None
        if closing is None:
            closing = [render_stream_failure(endpoint, error)]
        for chunk in [*held, *closing]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        if not outcome.complete:
            upstream.abort()
    await finish()
    await send({"type": "http.response.body", "body": b""})
