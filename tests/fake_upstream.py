"""A scripted fake OpenAI and Anthropic upstream on a real 127.0.0.1 port.

It answers like the real APIs (bodies with usage, SSE streams event by event), records
every request it receives, and does what a test scripts for the next calls:

    fake.script(Fail(status=500))                     # the next call fails
    fake.script(Stall(3), path="/v1/messages")        # the next /v1/messages stalls
    fake.script(SlowEvents(0.1), persistent=True)     # every call until reset()

Behaviours: ``Reply`` (the default), ``Fail``, ``Respond``, ``Stall`` (before headers),
``StallMidStream``, ``Reset`` (abort the TCP connection before answering),
``CutMidStream`` (close the connection inside the chunked body), ``Truncate`` (end the
stream cleanly but early), ``SlowEvents`` and ``SplitEvents`` (each event in two writes).

The server runs on its own event loop in a background thread, so sync SDK clients in
the test thread and async ones on the test loop can both call it. The bodies and events
it sends are built in ``upstream_wire`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from upstream_wire import (
    ANTHROPIC_PATHS,
    COMPLETION_TOKENS,
    COUNT_TOKENS,
    CREATED,
    EMBEDDING_DIMS,
    OPENAI_PATHS,
    PIECES,
    PROMPT_TOKENS,
    TEXT,
    anthropic_events,
    anthropic_message,
    anthropic_usage,
    chat_completion,
    chat_events,
    completion_events,
    embedding_vector,
    embeddings,
    error_body,
    json_body,
    openai_usage,
    response_object,
    responses_events,
    responses_usage,
    text_completion,
)

# The wire shapes are re-exported: tests import everything about the fake from here.
__all__ = [
    "ANTHROPIC_PATHS",
    "COMPLETION_TOKENS",
    "COUNT_TOKENS",
    "CREATED",
    "EMBEDDING_DIMS",
    "OPENAI_PATHS",
    "PIECES",
    "PROMPT_TOKENS",
    "TEXT",
    "Behaviour",
    "CutMidStream",
    "Fail",
    "FakeUpstream",
    "Received",
    "Reply",
    "Reset",
    "Respond",
    "SlowEvents",
    "SplitEvents",
    "Stall",
    "StallMidStream",
    "Truncate",
    "anthropic_events",
    "anthropic_message",
    "anthropic_usage",
    "chat_completion",
    "chat_events",
    "closed_port",
    "completion_events",
    "embedding_vector",
    "embeddings",
    "error_body",
    "json_body",
    "openai_usage",
    "response_object",
    "responses_events",
    "responses_usage",
    "text_completion",
]

# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Reply:
    """Answer normally (``pieces`` text deltas or these ``words``; gzip when asked)."""

    pieces: int | None = None
    gzip: bool = False
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fail:
    """Answer with an error status; the body is in the path's dialect unless given."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Respond:
    """Answer with exactly this status, body and content type."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Wait before sending any header (released early by ``reset``)."""

    seconds: float


@dataclass(frozen=True)
class StallMidStream:
    """Send ``after_events`` events, then go silent for ``seconds``."""

    after_events: int = 2
    seconds: float = 5.0


@dataclass(frozen=True)
class Reset:
    """Read the request, then abort the TCP connection (RST) without answering."""


@dataclass(frozen=True)
class CutMidStream:
    """Send ``after_events`` events (or half a JSON body), then close the connection."""

    after_events: int = 2


@dataclass(frozen=True)
class Truncate:
    """End the stream cleanly (proper chunked end) after ``after_events`` events."""

    after_events: int = 2


@dataclass(frozen=True)
class SlowEvents:
    """Pause ``delay`` seconds before each event; ``pieces`` text deltas."""

    delay: float = 0.1
    pieces: int | None = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitEvents:
    """Write every event in two TCP writes, ``pause`` seconds apart (the cut may fall
    inside a multi-byte character)."""

    pause: float = 0.05
    words: tuple[str, ...] = ()


Behaviour = (
    Reply
    | Fail
    | Respond
    | Stall
    | StallMidStream
    | Reset
    | CutMidStream
    | Truncate
    | SlowEvents
    | SplitEvents
)


# --------------------------------------------------------------------------- records


@dataclass
class Received:
    """One request as the fake saw it, and what it sent back."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    at: float
    behaviour: Behaviour = field(default_factory=Reply)
    status: int | None = None
    sent: bytearray = field(default_factory=bytearray)
    event_times: list[float] = field(default_factory=list)
    write_failed_at: float | None = None
    disconnected_at: float | None = None
    completed: bool = False

    @property
    def dropped_at(self) -> float | None:
        """When the fake first saw the peer gone (a failed write or a closed socket)."""
        seen = [t for t in (self.write_failed_at, self.disconnected_at) if t is not None]
        return min(seen) if seen else None

    @property
    def events_sent(self) -> int:
        """How many SSE events reached the socket."""
        return len(self.event_times)


# --------------------------------------------------------------------------- request


def _model(body: Any, default: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return body["model"]
    return default


def _pieces(behaviour: Behaviour) -> list[str]:
    words = getattr(behaviour, "words", ())
    if words:
        return list(words)
    count = getattr(behaviour, "pieces", None)
    if count is None:
        return PIECES
    return [f" w{i}" for i in range(count)]


# --------------------------------------------------------------------------- server


@dataclass
class _Scripted:
    behaviour: Behaviour
    path: str | None
    persistent: bool


class FakeUpstream:
    """The fake upstream server; ``start()`` it, read ``url``, ``script()`` it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[_Scripted] = []
        self._requests: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0

    # ---- lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstream:
        """Start serving on a free port in a background thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name="fake-upstream", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        loop.run_until_complete(self._runner.setup())
        # Room for hundreds of simultaneous connects (tests open many streams at once).
        loop.run_until_complete(web.SockSite(self._runner, sock, backlog=1024).start())
        self._release = asyncio.Event()
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._wake_stalled)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # ---- scripting and records

    def script(
        self, *behaviours: Behaviour, path: str | None = None, persistent: bool = False
    ) -> None:
        """Queue behaviours for the next calls (to ``path`` only, when given)."""
        with self._lock:
            self._script.extend(_Scripted(b, path, persistent) for b in behaviours)

    def reset(self) -> None:
        """Forget the script and the records; wake any stalled handler (it then aborts)."""
        with self._lock:
            self._script = []
            self._requests = []
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_stalled)

    @property
    def requests(self) -> list[Received]:
        """Requests received since the last reset, in arrival order."""
        with self._lock:
            return list(self._requests)

    def last(self, path: str | None = None) -> Received:
        """The most recent request (to ``path`` when given)."""
        matching = [r for r in self.requests if path is None or r.path == path]
        if not matching:
            raise AssertionError(f"the fake upstream received no request for {path or 'any path'}")
        return matching[-1]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` until true or ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def _next_behaviour(self, path: str) -> Behaviour:
        with self._lock:
            for index, entry in enumerate(self._script):
                if entry.path is None or entry.path == path:
                    if not entry.persistent:
                        del self._script[index]
                    return entry.behaviour
        return Reply()

    def _wake_stalled(self) -> None:
        if self._release is not None:
            self._release.set()
            self._release = asyncio.Event()

    async def _pause(self, seconds: float, request: web.Request, record: Received) -> bool:
        """Sleep; False when woken early by reset/stop or when the peer has gone away."""
        release = self._release
        assert release is not None
        deadline = time.monotonic() + seconds
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                if record.disconnected_at is None:
                    record.disconnected_at = time.monotonic()
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                await asyncio.wait_for(release.wait(), min(left, 0.02))
            except TimeoutError:
                continue
            return False

    # ---- the handler

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        behaviour = self._next_behaviour(request.path)
        record = Received(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            raw=raw,
            body=body,
            at=time.monotonic(),
            behaviour=behaviour,
        )
        with self._lock:
            self._requests.append(record)
        try:
            return await self._answer(request, record, behaviour)
        except (ConnectionError, RuntimeError):
            # The peer went away while we were writing: that is what tests look for.
            if record.write_failed_at is None:
                record.write_failed_at = time.monotonic()
            raise

    async def _answer(
        self, request: web.Request, record: Received, behaviour: Behaviour
    ) -> web.StreamResponse:
        path, body = record.path, record.body
        if isinstance(behaviour, Reset):
            _abort(request, rst=True)
            return web.Response(status=500)
        if isinstance(behaviour, Stall):
            if not await self._pause(behaviour.seconds, request, record):
                _abort(request)
                return web.Response(status=500)
            behaviour = Reply()
        if isinstance(behaviour, Fail):
            payload = behaviour.body
            if payload is None:
                payload = error_body(path, behaviour.status, behaviour.message)
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            if isinstance(payload, str):
                data = payload.encode()
            record.status = behaviour.status
            return web.Response(
                status=behaviour.status,
                body=data,
                content_type="application/json",
                headers=behaviour.headers,
            )
        if isinstance(behaviour, Respond):
            record.status = behaviour.status
            return web.Response(
                status=behaviour.status,
                body=behaviour.body,
                headers={"content-type": behaviour.content_type, **behaviour.headers},
            )
        if path not in OPENAI_PATHS + ANTHROPIC_PATHS or request.method != "POST":
            record.status = 404
            return web.json_response(error_body(path, 404, f"Unknown path {path}"), status=404)

        pieces = _pieces(behaviour)
        model = _model(body, "unknown-model")
        stream = isinstance(body, dict) and body.get("stream") is True
        if path == "/v1/embeddings" or path == "/v1/messages/count_tokens" or not stream:
            payload = json_body(path, model, body, "".join(pieces))
            return await self._answer_json(request, record, behaviour, payload)
        events = {
            "/v1/chat/completions": lambda: chat_events(model, body, pieces),
            "/v1/completions": lambda: completion_events(model, body, pieces),
            "/v1/responses": lambda: responses_events(model, pieces),
            "/v1/messages": lambda: anthropic_events(model, pieces),
        }[path]()
        return await self._answer_stream(request, record, behaviour, events)

    async def _answer_json(
        self, request: web.Request, record: Received, behaviour: Behaviour, payload: Any
    ) -> web.StreamResponse:
        data = orjson.dumps(payload)
        record.status = 200
        if isinstance(behaviour, CutMidStream):
            response = web.StreamResponse(status=200)
            response.content_type = "application/json"
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            record.sent += data[: len(data) // 2]
            _abort(request, graceful=True)
            return response
        if isinstance(behaviour, Reply) and behaviour.gzip:
            compressed = gzip.compress(data)
            record.sent += data
            record.completed = True
            return web.Response(
                body=compressed,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        record.sent += data
        record.completed = True
        return web.Response(body=data, content_type="application/json")

    async def _answer_stream(
        self, request: web.Request, record: Received, behaviour: Behaviour, events: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.headers["content-type"] = "text/event-stream; charset=utf-8"
        response.headers["cache-control"] = "no-cache"
        response.enable_chunked_encoding()
        record.status = 200
        await response.prepare(request)

        async def emit(event: bytes) -> None:
            if isinstance(behaviour, SplitEvents):
                cut = max(1, len(event) // 2)
                await response.write(event[:cut])
                record.sent += event[:cut]
                await asyncio.sleep(behaviour.pause)
                await response.write(event[cut:])
                record.sent += event[cut:]
            else:
                await response.write(event)
                record.sent += event
            record.event_times.append(time.monotonic())

        for index, event in enumerate(events):
            if isinstance(behaviour, CutMidStream) and index == behaviour.after_events:
                _abort(request, graceful=True)
                return response
            if isinstance(behaviour, Truncate) and index == behaviour.after_events:
                break
            if (
                isinstance(behaviour, StallMidStream)
                and index == behaviour.after_events
                and not await self._pause(behaviour.seconds, request, record)
            ):
                _abort(request)
                return response
            if isinstance(behaviour, SlowEvents) and not await self._pause(
                behaviour.delay, request, record
            ):
                _abort(request)
                return response
            await emit(event)
        await response.write_eof()
        record.completed = True
        return response


def _abort(request: web.Request, *, rst: bool = False, graceful: bool = False) -> None:
    """Drop the connection: RST, FIN after flushing (graceful), or at once."""
    transport = request.transport
    if transport is None:
        return
    if graceful:
        transport.close()
        return
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def closed_port() -> int:
    """A local port with nothing listening on it (connections are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
