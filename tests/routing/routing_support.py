"""Helpers for the routing and resilience tests.

Three fake upstreams (``tests/fake_upstream.py``) stand for three places a model can be
served from: each one is an OpenAI provider (``oa-a``, ``oa-b``, ``oa-c``) and an
Anthropic provider (``an-a``, ``an-b``, ``an-c``) at once, so a test scripts failures per
deployment by scripting the fake behind it. ``launch`` starts the real gateway (the app
under uvicorn, SQLite in a temporary directory) with the models a test needs and
retries and circuit breakers switched on, with small backoffs.

Also here: answers carrying tool calls (the fakes only answer text by themselves), and
readers for the gateway's state (``GET /api/v1/providers``, spend records, access log).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson

from fake_upstream import FakeUpstream, Respond, closed_port
from harness import MASTER_KEY, GatewayServer, gateway_settings
from tollway.telemetry.logs import ACCESS_LOGGER

CLIENT_TIMEOUT = 10.0
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "Say hello."}]

# Upstream credentials per fake; none of them may ever reach a client.
UPSTREAM_KEYS = {
    "a": "sk-route-a-SECRET-1f8e2d7c3b6a",
    "b": "sk-route-b-SECRET-9a4c6e1b7d2f",
    "c": "sk-route-c-SECRET-5d3b8f2a6c1e",
}
ANTHROPIC_UPSTREAM_KEYS = {
    "a": "sk-ant-route-a-SECRET-2c7e9a1d4f8b",
    "b": "sk-ant-route-b-SECRET-8f1b3d6a2e9c",
    "c": "sk-ant-route-c-SECRET-4a9d2f7c1b6e",
}
ALL_UPSTREAM_KEYS = (*UPSTREAM_KEYS.values(), *ANTHROPIC_UPSTREAM_KEYS.values())

# A price for every test model, so spend records carry a cost (USD per million tokens).
PRICE = {"input_mtok": "1", "output_mtok": "2"}


@dataclass(frozen=True)
class Upstreams:
    """The three fakes."""

    a: FakeUpstream
    b: FakeUpstream
    c: FakeUpstream

    def __iter__(self) -> Iterator[FakeUpstream]:
        return iter((self.a, self.b, self.c))

    def reset(self) -> None:
        """Forget every script and record."""
        for fake in self:
            fake.reset()


def providers(ups: Upstreams) -> dict[str, Any]:
    """An OpenAI and an Anthropic provider in front of each fake, and a dead one."""
    config: dict[str, Any] = {}
    for name, fake in (("a", ups.a), ("b", ups.b), ("c", ups.c)):
        config[f"oa-{name}"] = {
            "type": "openai",
            "base_url": fake.url + "/v1",
            "api_key": UPSTREAM_KEYS[name],
        }
        config[f"an-{name}"] = {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": ANTHROPIC_UPSTREAM_KEYS[name],
        }
    config["dead"] = {
        "type": "openai",
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
        "api_key": "sk-route-dead-SECRET-000000",
    }
    return config


def model(name: str, provider: str | None = None, **fields: Any) -> dict[str, Any]:
    """A model entry with a price (single deployment when ``provider`` is given)."""
    entry: dict[str, Any] = {"name": name, "price": PRICE, **fields}
    if provider is not None:
        entry["provider"] = provider
        entry.setdefault("model", f"{name}-up")
    return entry


def deployment(provider: str, upstream: str, **fields: Any) -> dict[str, Any]:
    """One deployment entry."""
    return {"provider": provider, "model": upstream, **fields}


class Gateway:
    """A started gateway and readers for its state."""

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.url = server.url

    @property
    def db_path(self) -> Path:
        """Its SQLite file."""
        return Path(self.server.settings.data_dir) / "tollway.db"

    def http(self, timeout: float = CLIENT_TIMEOUT) -> httpx.Client:
        """A plain client for the proxy routes (no key sent by default)."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def admin(self, key: str = MASTER_KEY) -> httpx.Client:
        """The management API as ``key``."""
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"authorization": f"Bearer {key}"},
            timeout=CLIENT_TIMEOUT,
        )

    def openai(self, timeout: float = CLIENT_TIMEOUT) -> openai.OpenAI:
        """The OpenAI SDK, no SDK retries."""
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=timeout
        )

    def anthropic(self, timeout: float = CLIENT_TIMEOUT) -> anthropic.Anthropic:
        """The Anthropic SDK, no SDK retries."""
        return anthropic.Anthropic(
            base_url=self.url, api_key=MASTER_KEY, max_retries=0, timeout=timeout
        )

    def aopenai(self) -> openai.AsyncOpenAI:
        """The async OpenAI SDK, no SDK retries."""
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
        )

    def aanthropic(self) -> anthropic.AsyncAnthropic:
        """The async Anthropic SDK, no SDK retries."""
        return anthropic.AsyncAnthropic(
            base_url=self.url, api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
        )

    # ---- calls

    def chat(self, model_name: str, timeout: float = CLIENT_TIMEOUT, **body: Any) -> httpx.Response:
        """One ``POST /v1/chat/completions`` as the master key."""
        payload = {"model": model_name, "messages": MESSAGES, **body}
        with self.http(timeout) as client:
            return client.post("/v1/chat/completions", json=payload, headers=AUTH)

    def messages(
        self, model_name: str, timeout: float = CLIENT_TIMEOUT, **body: Any
    ) -> httpx.Response:
        """One ``POST /v1/messages`` as the master key."""
        payload = {"model": model_name, "max_tokens": 50, "messages": MESSAGES, **body}
        with self.http(timeout) as client:
            return client.post("/v1/messages", json=payload, headers=AUTH)

    # ---- state

    def providers(self) -> dict[str, Any]:
        """``GET /api/v1/providers``."""
        with self.admin() as client:
            response = client.get("/providers")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def deployment_state(self, model_name: str, provider: str) -> dict[str, Any]:
        """The providers report's entry for one deployment of ``model_name``."""
        for entry in self.providers()["providers"]:
            if entry["name"] == provider:
                for item in entry["deployments"]:
                    if item["model_name"] == model_name:
                        return dict(item)
        raise AssertionError(f"no deployment of {model_name} on {provider}")

    def spend(self, **params: Any) -> dict[str, Any]:
        """``GET /api/v1/spend`` (flushes pending spend records first)."""
        with self.admin() as client:
            response = client.get("/spend", params=params)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    def rows(self, where: str = "1=1", *args: Any) -> list[dict[str, Any]]:
        """Spend records, straight from SQLite, after a flush."""
        self.spend()
        conn = sqlite3.connect(self.db_path, timeout=10.0)
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute(f"SELECT * FROM spend WHERE {where} ORDER BY id", args).fetchall()
        finally:
            conn.close()
        return [dict(row) for row in found]

    def row(self, request_id: str) -> dict[str, Any]:
        """The one spend record of ``request_id``."""
        deadline = time.monotonic() + 3
        while True:
            found = self.rows("request_id = ?", request_id)
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(found) == 1, f"{len(found)} spend records for {request_id}"
        return found[0]


# ``start(models, retry=..., circuit=..., timeouts=...)``: the gateway fixtures' type.
StartGateway = Callable[..., Gateway]


def launch(
    ups: Upstreams,
    data_dir: Path,
    models: list[dict[str, Any]],
    *,
    retry: dict[str, Any] | None = None,
    circuit: dict[str, Any] | None = None,
    timeouts: dict[str, Any] | None = None,
    extra_providers: dict[str, Any] | None = None,
) -> GatewayServer:
    """Start a gateway serving ``models`` with retries (2, tiny backoff) and a breaker
    that does not trip unless a test asks for one."""
    settings = gateway_settings(
        ups.a,
        data_dir,
        providers={**providers(ups), **(extra_providers or {})},
        models=models,
        retry={"attempts": 2, "backoff_base": 0.01, "backoff_max": 0.05, **(retry or {})},
        circuit={"failures": 1000, "cooldown": 1.0, **(circuit or {})},
        timeouts={"connect": 1.0, "read": 2.0, "stream_idle": 1.0, **(timeouts or {})},
        log={"level": "warning", "access": True},
    )
    return GatewayServer(settings).start()


# --------------------------------------------------------------------------- tool calls

TOOL_NAME = "get_weather"
TOOL_ARGS = {"city": "Paris", "unit": "celsius"}
TOOL_TEXT = "Let me check."
OPENAI_TOOL_ID = "call_R0ute7x9Qk2mZ"
ANTHROPIC_TOOL_ID = "toolu_01R0ute7x9Qk2mZ"
TOOL_INPUT_TOKENS = 31
TOOL_OUTPUT_TOKENS = 12
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Weather in a city.",
            "parameters": WEATHER_SCHEMA,
        },
    }
]
ANTHROPIC_TOOLS = [
    {"name": TOOL_NAME, "description": "Weather in a city.", "input_schema": WEATHER_SCHEMA}
]


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": TOOL_INPUT_TOKENS,
        "completion_tokens": TOOL_OUTPUT_TOKENS,
        "total_tokens": TOOL_INPUT_TOKENS + TOOL_OUTPUT_TOKENS,
    }


def _anthropic_usage(output: int) -> dict[str, Any]:
    return {
        "input_tokens": TOOL_INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
    }


def openai_tool_reply(upstream_model: str, stream: bool) -> Respond:
    """A chat completion (or its stream) with text and one tool call."""
    arguments = json.dumps(TOOL_ARGS)
    if not stream:
        body = {
            "id": "chatcmpl-route0001",
            "object": "chat.completion",
            "created": 1_741_569_952,
            "model": upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": TOOL_TEXT,
                        "refusal": None,
                        "tool_calls": [
                            {
                                "id": OPENAI_TOOL_ID,
                                "type": "function",
                                "function": {"name": TOOL_NAME, "arguments": arguments},
                            }
                        ],
                    },
                    "logprobs": None,
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": _openai_usage(),
        }
        return Respond(200, orjson.dumps(body))

    def chunk(choices: list[Any], usage: Any = None) -> bytes:
        return _data(
            {
                "id": "chatcmpl-route0001",
                "object": "chat.completion.chunk",
                "created": 1_741_569_952,
                "model": upstream_model,
                "choices": choices,
                "usage": usage,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    half = len(arguments) // 2
    events = [
        chunk([choice({"role": "assistant", "content": ""})]),
        chunk([choice({"content": "Let me"})]),
        chunk([choice({"content": " check."})]),
        chunk(
            [
                choice(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": OPENAI_TOOL_ID,
                                "type": "function",
                                "function": {"name": TOOL_NAME, "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        ),
        chunk(
            [choice({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]})]
        ),
        chunk(
            [choice({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]})]
        ),
        chunk([choice({}, "tool_calls")]),
        chunk([], _openai_usage()),
        b"data: [DONE]\n\n",
    ]
    return Respond(200, b"".join(events), "text/event-stream")


def anthropic_tool_reply(upstream_model: str, stream: bool) -> Respond:
    """A Messages API message (or its stream) with text and one tool_use block."""
    if not stream:
        body = {
            "id": "msg_route0001",
            "type": "message",
            "role": "assistant",
            "model": upstream_model,
            "content": [
                {"type": "text", "text": TOOL_TEXT},
                {
                    "type": "tool_use",
                    "id": ANTHROPIC_TOOL_ID,
                    "name": TOOL_NAME,
                    "input": TOOL_ARGS,
                },
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": _anthropic_usage(TOOL_OUTPUT_TOKENS),
        }
        return Respond(200, orjson.dumps(body))
    arguments = json.dumps(TOOL_ARGS)
    half = len(arguments) // 2
    start = {
        "id": "msg_route0001",
        "type": "message",
        "role": "assistant",
        "model": upstream_model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(1),
    }

    def delta(index: int, value: dict[str, Any]) -> bytes:
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": value}
        )

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
        delta(0, {"type": "text_delta", "text": "Let me"}),
        delta(0, {"type": "text_delta", "text": " check."}),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": ANTHROPIC_TOOL_ID,
                    "name": TOOL_NAME,
                    "input": {},
                },
            },
        ),
        delta(1, {"type": "input_json_delta", "partial_json": arguments[:half]}),
        delta(1, {"type": "input_json_delta", "partial_json": arguments[half:]}),
        _event("content_block_stop", {"type": "content_block_stop", "index": 1}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": TOOL_OUTPUT_TOKENS},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return Respond(200, b"".join(events), "text/event-stream")


# --------------------------------------------------------------------------- stream errors


def openai_error_event(message: str = "The server is overloaded.") -> bytes:
    """An OpenAI-dialect SSE error event."""
    return _data(
        {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    )


def anthropic_error_event(kind: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    """An Anthropic-dialect SSE error event."""
    return _event("error", {"type": "error", "error": {"type": kind, "message": message}})


def sse_events(raw: bytes) -> list[bytes]:
    """Split an SSE body into its events (each with its blank line)."""
    return [part + b"\n\n" for part in raw.split(b"\n\n") if part.strip()]


def event_payload(event: bytes) -> Any:
    """The JSON of an event's data lines (None for ``[DONE]`` or no data)."""
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines or lines == [b"[DONE]"]:
        return None
    return json.loads(b"\n".join(lines))


# --------------------------------------------------------------------------- access log


class AccessLog(logging.Handler):
    """Keeps the access-log records the gateway thread emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def entries(self) -> list[dict[str, Any]]:
        """The structured fields of every access line so far."""
        with self._lock:
            records = list(self.records)
        out = []
        for record in records:
            value = getattr(record, "fields", None)
            if isinstance(value, dict):
                out.append(value)
        return out

    def wait_for(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        """At least ``count`` entries (they are written after each response)."""
        deadline = time.monotonic() + timeout
        while len(self.entries()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.entries()


def capture_access_log() -> tuple[AccessLog, logging.Logger, int]:
    """Attach a collector to the access logger (at INFO)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    collector = AccessLog()
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(collector)
    return collector, logger, previous


def requests_to(fake: FakeUpstream, path: str | None = None) -> int:
    """How many requests ``fake`` received (to ``path`` when given)."""
    return len([r for r in fake.requests if path is None or r.path == path])


def wait_until(predicate: Any, timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
