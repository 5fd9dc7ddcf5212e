"""Small typed helpers over raw ASGI, used on the hot proxy path."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from tollway.bounds import MAX_HEADER_BYTES
from tollway.errors import (
    BadRequest,
    HeadersTooLarge,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: RawHeaders = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientDisconnected(Exception):
    """The client went away before the request body was read."""


# Request ids come from a generator of their own, seeded from the OS: the interpreter's
# shared one can be reseeded by any library (test frameworks do), which would repeat ids,
# and a repeated id would make a spend record look like one already stored.
_IDS = random.Random()  # noqa: S311 (an id, not a secret)
os.register_at_fork(after_in_child=lambda: _IDS.seed())


def new_request_id() -> str:
    """A short unique id for one request (96 random bits; an id, not a secret, so a
    pseudo-random generator serves: no system call on the hot path)."""
    return f"req_{_IDS.getrandbits(96):024x}"


@dataclass(slots=True)
class ResponseState:
    """How far the response to one request has got."""

    started: bool = False  # the status line and headers went out
    done: bool = False  # the last body message went out
    delivered: bool = False  # the answer is complete for the client (a stream's final event)


def tracking(send: Send, state: ResponseState, extra: RawHeaders | None = None) -> Send:
    """``send`` that records the response's progress in ``state`` and adds ``extra``
    (a list the caller may still fill until the response starts) to its headers."""

    async def tracked(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            state.started = True
            if extra:
                message["headers"] = [*message.get("headers", ()), *extra]
        elif kind == "http.response.body" and not message.get("more_body", False):
            state.done = state.delivered = True
        await send(message)

    return tracked


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names, a repeated one's values joined with
    ", " (RFC 9110 5.3: list headers such as anthropic-beta may come as several lines);
    431 past the size limit (nothing larger is looked at or logged)."""
    raw = scope["headers"]
    if sum(len(name) + len(value) for name, value in raw) > MAX_HEADER_BYTES:
        raise HeadersTooLarge(f"Request headers are larger than {MAX_HEADER_BYTES} bytes.")
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def read_body(
    receive: Receive, headers: dict[str, str], limit: int, within: float | None = None
) -> bytes:
    """Read the whole request body within ``within`` seconds (408 after), refusing more
    than ``limit`` bytes early (413)."""
    if within is None:
        return await _read_body(receive, headers, limit)
    try:
        async with asyncio.timeout(within):
            return await _read_body(receive, headers, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {within:g} seconds."
        ) from None


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding}' is not supported; send the JSON body uncompressed."
        )
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length header is not a number.")
        if int(declared) > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` (already read) once, then waits on the
    client as the original would (for its disconnect)."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")


async def send_response(send: Send, status: int, body: bytes, headers: RawHeaders) -> None:
    """Send a complete response with a Content-Length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
