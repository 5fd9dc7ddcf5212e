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
the test thread and async ones on the test loop can both call it.
"""

from __future__ import annotations

import asyncio
import base64
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

CREATED = 1_741_569_952
PIECES = ["Hello", " from", " the", " fake", " upstream", "."]
TEXT = "".join(PIECES)
PROMPT_TOKENS = 17
COMPLETION_TOKENS = len(PIECES)
COUNT_TOKENS = 42
EMBEDDING_DIMS = 8

OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


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
    completed: bool = False

    @property
    def events_sent(self) -> int:
        """How many SSE events reached the socket."""
        return len(self.event_times)


# --------------------------------------------------------------------------- bodies


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


def openai_usage() -> dict[str, Any]:
    """A chat/completions usage object."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def responses_usage() -> dict[str, Any]:
    """A Responses API usage object."""
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": COMPLETION_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def anthropic_usage(output_tokens: int = COMPLETION_TOKENS) -> dict[str, Any]:
    """A Messages API usage object."""
    return {
        "input_tokens": PROMPT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def chat_completion(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete chat.completion object."""
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": openai_usage(),
        "system_fingerprint": "fp_fake",
    }


def text_completion(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete legacy text_completion object."""
    return {
        "id": "cmpl-fake0001",
        "object": "text_completion",
        "created": CREATED,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def embedding_vector(index: int) -> list[float]:
    """A deterministic small vector (exactly representable in float32)."""
    return [round((index + 1) * 0.125 + i * 0.25, 3) for i in range(EMBEDDING_DIMS)]


def embeddings(model: str, body: Any) -> dict[str, Any]:
    """An embeddings list, base64-encoded float32 when the client asked for it."""
    inputs = body.get("input") if isinstance(body, dict) else None
    count = len(inputs) if isinstance(inputs, list) else 1
    as_base64 = isinstance(body, dict) and body.get("encoding_format") == "base64"
    data = []
    for index in range(count):
        vector = embedding_vector(index)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
    }


def _response_message(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_fake0001",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response_object(model: str, status: str = "completed", text: str = TEXT) -> dict[str, Any]:
    """A Responses API ``response`` object."""
    done = status == "completed"
    return {
        "id": "resp_fake0001",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [_response_message(text)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": responses_usage() if done else None,
        "user": None,
        "metadata": {},
    }


def anthropic_message(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete Messages API message."""
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def chat_events(model: str, body: Any, pieces: list[str]) -> list[bytes]:
    """Chat completion chunks, a usage chunk when asked, then ``[DONE]``."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(choices: list[Any]) -> bytes:
        payload: dict[str, Any] = {
            "id": "chatcmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if with_usage:
            payload["usage"] = None
        return _data(payload)

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [chunk([choice({"content": piece})]) for piece in pieces]
    events.append(chunk([choice({}, "stop")]))
    if with_usage:
        usage = openai_usage()
        usage["completion_tokens"] = len(pieces)
        usage["total_tokens"] = PROMPT_TOKENS + len(pieces)
        events.append(
            _data(
                {
                    "id": "chatcmpl-fake0001",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return events


def completion_events(model: str, body: Any, pieces: list[str]) -> list[bytes]:
    """Legacy completion chunks, a usage chunk when asked, then ``[DONE]``."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(text: str, finish: str | None) -> bytes:
        return _data(
            {
                "id": "cmpl-fake0001",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            }
        )

    events = [chunk(piece, None) for piece in pieces]
    events.append(chunk("", "stop"))
    if with_usage:
        events.append(
            _data(
                {
                    "id": "cmpl-fake0001",
                    "object": "text_completion",
                    "created": CREATED,
                    "model": model,
                    "choices": [],
                    "usage": text_completion(model)["usage"],
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return events


def responses_events(model: str, pieces: list[str]) -> list[bytes]:
    """Responses API events from ``response.created`` to ``response.completed``."""
    text = "".join(pieces)
    sequence = iter(range(10_000))
    item = _response_message("", status="in_progress")
    item["content"] = []
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}

    def event(kind: str, **fields: Any) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

    where = {"item_id": "msg_fake0001", "output_index": 0, "content_index": 0}
    events = [
        event("response.created", response=response_object(model, "in_progress")),
        event("response.in_progress", response=response_object(model, "in_progress")),
        event("response.output_item.added", output_index=0, item=item),
        event("response.content_part.added", part=part, **where),
    ]
    events += [
        event("response.output_text.delta", delta=piece, logprobs=[], **where) for piece in pieces
    ]
    events += [
        event("response.output_text.done", text=text, logprobs=[], **where),
        event("response.content_part.done", part={**part, "text": text}, **where),
        event("response.output_item.done", output_index=0, item=_response_message(text)),
        event("response.completed", response=response_object(model, "completed", text)),
    ]
    return events


def anthropic_events(model: str, pieces: list[str]) -> list[bytes]:
    """Messages API events from ``message_start`` to ``message_stop``."""
    start = anthropic_message(model)
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = anthropic_usage(output_tokens=1)
    events = [
        _event("message_start", {"type": "message_start", "message": start}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _event("ping", {"type": "ping"}),
    ]
    events += [
        _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in pieces
    ]
    events += [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return events


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    """An error body shaped like the real API behind ``path``."""
    if path.startswith("/v1/messages"):
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "r1"}
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


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
        loop.run_until_complete(web.SockSite(self._runner, sock).start())
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

    async def _pause(self, seconds: float) -> bool:
        """Sleep; False when woken early by reset/stop."""
        release = self._release
        assert release is not None
        try:
            await asyncio.wait_for(release.wait(), seconds)
        except TimeoutError:
            return True
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
            if not await self._pause(behaviour.seconds):
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
            payload = _json_body(path, model, body, "".join(pieces))
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
                and not await self._pause(behaviour.seconds)
            ):
                _abort(request)
                return response
            if isinstance(behaviour, SlowEvents) and not await self._pause(behaviour.delay):
                _abort(request)
                return response
            await emit(event)
        await response.write_eof()
        record.completed = True
        return response


def _json_body(path: str, model: str, body: Any, text: str) -> Any:
    if path == "/v1/chat/completions":
        return chat_completion(model, text)
    if path == "/v1/completions":
        return text_completion(model, text)
    if path == "/v1/embeddings":
        return embeddings(model, body)
    if path == "/v1/responses":
        return response_object(model, text=text)
    if path == "/v1/messages/count_tokens":
        return {"input_tokens": COUNT_TOKENS}
    return anthropic_message(model, text)


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
