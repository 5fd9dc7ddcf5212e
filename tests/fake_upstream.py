"""A scripted fake OpenAI and Anthropic upstream on a real 127.0.0.1 port.

It answers like the real APIs (bodies with usage, SSE streams event by event), records
every request it receives, and does what a test scripts for the next calls:

    fake.script(Fail(status=500))                     # the next call fails
    fake.script(Stall(3), path="/v1/messages")        # the next /v1/messages stalls
    fake.script(SlowEvents(0.1), persistent=True)     # every call until reset()
    fake.script(CallTool(), match="run-42", persistent=True)  # calls whose body has "run-42"

Behaviours: ``Reply`` (the default), ``Fail``, ``Respond``, ``Stall`` (before headers),
``StallMidStream``, ``Reset`` (abort the TCP connection before answering),
``CutMidStream`` (close the connection inside the chunked body), ``Truncate`` (end the
stream cleanly but early), ``SlowEvents``, ``SplitEvents`` (each event in two writes) and
``CallTool`` (a tool round trip: ask for one of the offered tools, then answer with what
its result said).

The server runs on its own event loop in a background thread, so sync SDK clients in
the test thread and async ones on the test loop can both call it. The bodies and events
it sends are built in ``upstream_wire`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import re
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
    SHELL_TOOLS,
    TEXT,
    ToolCall,
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
    tool_arguments,
    tool_call_body,
    tool_call_events,
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
    "SHELL_TOOLS",
    "TEXT",
    "Behaviour",
    "CallTool",
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
    "ToolCall",
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
    "offered_tools",
    "openai_usage",
    "response_object",
    "responses_events",
    "responses_usage",
    "text_completion",
    "tool_arguments",
    "tool_results",
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


@dataclass(frozen=True)
class CallTool:
    """Drive one tool round trip, in every wire format, streamed or not.

    While the request offers a tool named in ``prefer`` (the first offered match wins) and
    carries no tool result, the answer is ``preamble`` and a call to that tool with
    arguments valid for its schema (``command`` for a shell). Once the request carries a
    tool result, the answer is text: ``The tool said <expect>.`` when a result contains
    ``expect`` (which only running ``command`` prints: proof the client ran it), else what
    the results held. A result whose id answers no call before it gets the real APIs' 400.
    """

    command: str = "echo tool-says-$((6*7))"
    expect: str = "tool-says-42"
    prefer: tuple[str, ...] = SHELL_TOOLS
    preamble: str = "Running the command."


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
    | CallTool
)


_TOOL_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/messages")

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
    called: ToolCall | None = None

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


# --------------------------------------------------------------------------- tools


def offered_tools(path: str, body: Any) -> dict[str, Any]:
    """The function tools a request offers, by name, with their JSON schemas (built-in
    tools such as ``web_search`` have no schema and are left out)."""
    tools = body.get("tools") if isinstance(body, dict) else None
    offered: dict[str, Any] = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if path == "/v1/chat/completions":
            function = tool.get("function")
            if tool.get("type") == "function" and isinstance(function, dict):
                offered[str(function.get("name"))] = function.get("parameters") or {}
        elif path == "/v1/responses":
            if tool.get("type") == "function":
                offered[str(tool.get("name"))] = tool.get("parameters") or {}
        elif "input_schema" in tool:
            offered[str(tool.get("name"))] = tool["input_schema"]
    return offered


def _turns(path: str, body: Any) -> list[Any]:
    key = "input" if path == "/v1/responses" else "messages"
    turns = body.get(key) if isinstance(body, dict) else None
    return turns if isinstance(turns, list) else []


def _texts(value: Any) -> list[str]:
    """Every string inside a result (``content`` may be a string or a list of parts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        return [text for key, item in value.items() if key != "type" for text in _texts(item)]
    return []


def tool_results(path: str, body: Any) -> list[tuple[str, str]]:
    """``(call id, text)`` of every tool result in a request: OpenAI ``tool`` messages,
    Responses ``function_call_output`` items, Anthropic ``tool_result`` blocks."""
    found: list[tuple[str, str]] = []
    for turn in _turns(path, body):
        if not isinstance(turn, dict):
            continue
        if path == "/v1/chat/completions" and turn.get("role") == "tool":
            found.append((str(turn.get("tool_call_id")), "".join(_texts(turn.get("content")))))
        elif path == "/v1/responses" and turn.get("type") == "function_call_output":
            found.append((str(turn.get("call_id")), "".join(_texts(turn.get("output")))))
        elif path == "/v1/messages" and isinstance(turn.get("content"), list):
            for block in turn["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    text = "".join(_texts(block.get("content")))
                    found.append((str(block.get("tool_use_id")), text))
    return found


def _unanswerable(path: str, body: Any) -> str | None:
    """Why the real API would refuse the request's tool results, or None: each must answer
    a call of the assistant turn before it (the Responses API: a call anywhere in the
    input, unless the conversation is stored upstream)."""
    calls: set[str] = set()
    for turn in _turns(path, body):
        if not isinstance(turn, dict):
            continue
        if path == "/v1/responses":
            if turn.get("type") == "function_call":
                calls.add(str(turn.get("call_id")))
            continue
        if turn.get("role") == "assistant":
            calls = _assistant_calls(path, turn)
        for call_id, _ in tool_results(path, {"messages": [turn]}):
            if call_id not in calls:
                return f"tool result {call_id!r} answers no tool call of the turn before it"
    if path == "/v1/responses" and not body.get("previous_response_id"):
        for call_id, _ in tool_results(path, body):
            if call_id not in calls:
                return f"No tool call found for function call output with call_id {call_id}."
    return None


def _assistant_calls(path: str, turn: dict[str, Any]) -> set[str]:
    if path == "/v1/chat/completions":
        calls: Any = turn.get("tool_calls")
        return {str(c.get("id")) for c in _items(calls)}
    blocks = _items(turn.get("content"))
    return {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}


def _items(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (nothing when it is not one)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _tool_turn(behaviour: CallTool, path: str, body: Any, number: int) -> ToolCall | str | Fail:
    """What ``CallTool`` answers to this request: a call, text, or the API's 400."""
    results = tool_results(path, body)
    if results:
        problem = _unanswerable(path, body)
        if problem is not None:
            return Fail(status=400, message=problem)
        if any(behaviour.expect in text for _, text in results):
            return f"The tool said {behaviour.expect}."
        seen = " | ".join(text for _, text in results)[:300]
        return f"The tool result did not contain {behaviour.expect}: {seen}"
    offered = offered_tools(path, body)
    if not offered:
        return TEXT
    name = next((n for n in behaviour.prefer if n in offered), None)
    if name is None:
        return f"None of the offered tools ({', '.join(sorted(offered))}) is one I call."
    arguments = tool_arguments(offered[name], behaviour.command)
    return ToolCall(number, name, arguments, behaviour.preamble)


# --------------------------------------------------------------------------- server


@dataclass
class _Scripted:
    behaviour: Behaviour
    path: str | None
    persistent: bool
    match: bytes | None = None


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
        self._calls = itertools.count(1)
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
        self,
        *behaviours: Behaviour,
        path: str | None = None,
        persistent: bool = False,
        match: str | None = None,
    ) -> None:
        """Queue behaviours for the next calls (to ``path`` only, and only calls whose body
        contains ``match``, when given: concurrent clients each get their own script)."""
        needle = match.encode() if match is not None else None
        with self._lock:
            self._script.extend(_Scripted(b, path, persistent, needle) for b in behaviours)

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

    def _next_behaviour(self, path: str, raw: bytes) -> Behaviour:
        with self._lock:
            for index, entry in enumerate(self._script):
                if entry.match is not None and entry.match not in raw:
                    continue
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
        behaviour = self._next_behaviour(request.path, raw)
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

        model = _model(body, "unknown-model")
        stream = isinstance(body, dict) and body.get("stream") is True
        if isinstance(behaviour, CallTool) and path in _TOOL_PATHS:
            turn = _tool_turn(behaviour, path, body, next(self._calls))
            if isinstance(turn, Fail):
                return await self._answer(request, record, turn)
            if isinstance(turn, ToolCall):
                record.called = turn
                if not stream:
                    payload = tool_call_body(path, model, turn)
                    return await self._answer_json(request, record, behaviour, payload)
                events = tool_call_events(path, model, body, turn)
                return await self._answer_stream(request, record, behaviour, events)
            behaviour = Reply(words=tuple(re.findall(r"\s*\S+", turn)))
        pieces = _pieces(behaviour)
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
