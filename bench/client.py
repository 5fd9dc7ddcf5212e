"""A minimal keep-alive HTTP/1.1 client that timestamps the first SSE event, and the
checks that tell a good answer from a bad one before any load is driven.

Time to first token is measured here rather than with wrk: from the request's last byte
written to the first complete ``data:`` event read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from endpoint import Endpoint

from services import HOST

T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    first_event_s: float | None  # request sent -> first complete SSE event with a data: line
    total_s: float


Check = Callable[[Reply], str | None]  # None when the reply is what was asked for


def has_data_event(buf: bytes | bytearray) -> bool:
    text = buf.replace(b"\r\n", b"\n")
    pos = 0
    while (end := text.find(b"\n\n", pos)) >= 0:
        if any(line.startswith(b"data:") for line in text[pos:end].split(b"\n")):
            return True
        pos = end + 2
    return False


class HttpClient:
    """One keep-alive connection; requests are sent pre-rendered (``Endpoint.raw_request``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def send(self, raw: bytes, timeout_s: float = 30.0) -> Reply:
        return await asyncio.wait_for(self._send(raw), timeout_s)

    async def _send(self, raw: bytes) -> Reply:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            self.connects += 1
        reader, writer = self.reader, self.writer
        assert reader is not None
        start = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        while head.startswith(b"HTTP/1.1 1"):  # 100 Continue and friends
            head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()

        body = bytearray()
        first_event_s: float | None = None

        def feed(data: bytes) -> None:
            nonlocal first_event_s
            body.extend(data)
            if first_event_s is None and has_data_event(body):
                first_event_s = time.perf_counter() - start

        keep_alive = "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                feed((await reader.readexactly(size + 2))[:-2])
        elif "content-length" in headers:
            feed(await reader.readexactly(int(headers["content-length"])))
        else:
            feed(await reader.read())
            keep_alive = False
        total_s = time.perf_counter() - start
        if not keep_alive:
            await self.close()
        return Reply(status, headers, bytes(body), first_event_s, total_s)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop (as the servers do) when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _json(reply: Reply) -> Any:
    if reply.status != 200:
        raise ValueError(f"HTTP {reply.status}")
    return json.loads(reply.body)


def chat_ok(reply: Reply) -> str | None:
    """An OpenAI chat.completion with text and usage."""
    try:
        doc = _json(reply)
        content = doc["choices"][0]["message"]["content"]
        tokens = doc["usage"]["total_tokens"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"not a chat.completion with usage ({exc!r})"
    if not isinstance(content, str) or not isinstance(tokens, int):
        return "chat.completion content or usage.total_tokens has the wrong type"
    return None


def responses_ok(reply: Reply) -> str | None:
    """An OpenAI Responses object with output text and usage."""
    try:
        doc = _json(reply)
        text = doc["output"][0]["content"][0]["text"]
        tokens = doc["usage"]["total_tokens"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"not a response with output text and usage ({exc!r})"
    if not isinstance(text, str) or not isinstance(tokens, int):
        return "response output text or usage.total_tokens has the wrong type"
    return None


def messages_ok(reply: Reply) -> str | None:
    """An Anthropic message with text and usage."""
    try:
        doc = _json(reply)
        text = doc["content"][0]["text"]
        tokens = doc["usage"]["output_tokens"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"not an Anthropic message with usage ({exc!r})"
    if not isinstance(text, str) or not isinstance(tokens, int):
        return "message text or usage.output_tokens has the wrong type"
    return None


def chat_stream_ok(reply: Reply) -> str | None:
    """An OpenAI chat stream that ends with ``data: [DONE]``."""
    if reply.status != 200:
        return f"HTTP {reply.status}"
    if not reply.headers.get("content-type", "").startswith("text/event-stream"):
        return f"content-type {reply.headers.get('content-type')!r}, expected text/event-stream"
    if reply.first_event_s is None:
        return "no SSE data event"
    if b"data: [DONE]" not in reply.body:
        return "stream did not end with data: [DONE]"
    return None


def describe(endpoint: Endpoint, reply: Reply | None, problem: str) -> str:
    status = f"HTTP {reply.status} {reply.headers}" if reply else "no reply"
    body = reply.body[:1500].decode(errors="replace") if reply else ""
    return (
        f"{problem}\n  request: POST {endpoint.url} {dict(endpoint.headers)}\n"
        f"  body: {endpoint.body.decode()}\n  response: {status}\n  response body: {body}"
    )


async def probe(endpoint: Endpoint, check: Check) -> str | None:
    """Send one request; None if the reply passes ``check``, else a full description."""
    client = HttpClient(endpoint.port)
    reply: Reply | None = None
    try:
        reply = await client.send(endpoint.raw_request(), timeout_s=30)
        problem = check(reply)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        problem = f"request failed: {exc!r}"
    finally:
        await client.close()
    return describe(endpoint, reply, problem) if problem else None
