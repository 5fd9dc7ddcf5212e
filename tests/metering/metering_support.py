"""Helpers for the metering tests: a fake upstream with scripted usage, expected costs
computed independently with genai-prices, spend lookups, and ``tollway serve`` in a
subprocess.

``MeteredUpstream`` extends the shared fake (``tests/fake_upstream.py``) with one more
behaviour, ``Metered``: answer like ``Reply`` but report exactly the given token counts
(cached input, Anthropic cache reads and writes, reasoning tokens), optionally slowly,
optionally without any usage at all.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import genai_prices
import httpx
import openai
import orjson
import yaml
from aiohttp import web

from fake_upstream import (
    PIECES,
    FakeUpstream,
    Received,
    anthropic_events,
    anthropic_message,
    chat_completion,
    chat_events,
    completion_events,
    embeddings,
    response_object,
    responses_events,
    text_completion,
)

MASTER_KEY = "sk-tw-master-metering-2b7d9e4f1a6c3058"
OPENAI_UPSTREAM_KEY = "sk-upstream-oa-METERING-8c1d2e3f4a5b"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-METERING-5b4a3f2e1d0c"
CLIENT_TIMEOUT = 15.0
MESSAGES = [{"role": "user", "content": "Say hello."}]

BIN = Path(sys.executable).parent

# ----------------------------------------------------------------- models under test
# Client name -> (provider, upstream model id). Upstream ids the price database knows
# are priced from genai-prices; the others carry a ``price:`` override or stay unpriced.
GPT_MINI = "gpt-4o-mini"  # openai, cached-input price
O3_MINI = "o3-mini"  # openai reasoning model
EMBED = "text-embedding-3-small"  # input price only
INSTRUCT = "gpt-3.5-turbo-instruct"  # legacy completions
SONNET = "sonnet"  # -> claude-sonnet-4-5-20250929 (tiered above 200k input tokens)
SONNET_UPSTREAM = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-latest"
HOUSE_GPT = "house-gpt"  # -> house-gpt-1 with a price override
HOUSE_EMBED = "house-embed"  # -> house-embed-1 with a price override (input only)
HOUSE_CLAUDE = "house-claude"  # -> house-claude-1 with a price override (cache prices)
MYSTERY_GPT = "mystery-gpt"  # -> mystery-model-xyz: nobody knows its price
MYSTERY_CLAUDE = "mystery-claude"  # -> mystery-claude-xyz: nobody knows its price
DOLLAR_GPT = "dollar-gpt"  # one UNIT per output token, input free: worst cases are exact
DOLLAR_CLAUDE = "dollar-claude"
CHEAP_WITH_FALLBACK = "cheap-with-fallback"  # $1/MTok output, falls back to dollar-gpt
CENT_GPT = "cent-gpt"  # one UNIT per token, input and output

HOUSE_GPT_PRICE = {
    "input_mtok": "2.5",
    "output_mtok": "10",
    "cache_read_mtok": "1.25",
}
HOUSE_CLAUDE_PRICE = {
    "input_mtok": "3",
    "output_mtok": "15",
    "cache_read_mtok": "0.3",
    "cache_write_mtok": "3.75",
}
HOUSE_EMBED_PRICE = {"input_mtok": "0.13", "output_mtok": "0"}
# One output token of the dollar-* models costs one UNIT (a cent: configured prices are
# capped at $10,000 per million tokens); input is free, so worst cases are exact.
UNIT = Decimal("0.01")
DOLLAR_PRICE = {"input_mtok": "0", "output_mtok": str(UNIT * 1_000_000)}

MODELS: list[dict[str, Any]] = [
    {"name": GPT_MINI, "provider": "oa"},
    {"name": O3_MINI, "provider": "oa"},
    {"name": EMBED, "provider": "oa"},
    {"name": INSTRUCT, "provider": "oa"},
    {"name": SONNET, "provider": "an", "model": SONNET_UPSTREAM},
    {"name": HAIKU, "provider": "an"},
    {"name": HOUSE_GPT, "provider": "oa", "model": "house-gpt-1", "price": HOUSE_GPT_PRICE},
    {"name": HOUSE_EMBED, "provider": "oa", "model": "house-embed-1", "price": HOUSE_EMBED_PRICE},
    {
        "name": HOUSE_CLAUDE,
        "provider": "an",
        "model": "house-claude-1",
        "price": HOUSE_CLAUDE_PRICE,
    },
    {"name": MYSTERY_GPT, "provider": "oa", "model": "mystery-model-xyz"},
    {"name": MYSTERY_CLAUDE, "provider": "an", "model": "mystery-claude-xyz"},
    {"name": DOLLAR_GPT, "provider": "oa", "model": "dollar-gpt-1", "price": DOLLAR_PRICE},
    {"name": DOLLAR_CLAUDE, "provider": "an", "model": "dollar-claude-1", "price": DOLLAR_PRICE},
    {
        "name": CENT_GPT,
        "provider": "oa",
        "model": "cent-gpt-1",
        "price": {"input_mtok": str(UNIT * 1_000_000), "output_mtok": str(UNIT * 1_000_000)},
    },
    {
        "name": CHEAP_WITH_FALLBACK,
        "provider": "oa",
        "model": "cheap-1",
        "price": {"input_mtok": "0", "output_mtok": "1"},
        "fallbacks": [DOLLAR_GPT],
    },
]
UPSTREAM_OF = {m["name"]: m.get("model", m["name"]) for m in MODELS}
PROVIDER_ID = {m["name"]: "openai" if m["provider"] == "oa" else "anthropic" for m in MODELS}
OVERRIDES = {m["name"]: m["price"] for m in MODELS if "price" in m}


def providers(upstream: FakeUpstream) -> dict[str, Any]:
    """Provider config in front of ``upstream``."""
    return {
        "oa": {"type": "openai", "base_url": upstream.url + "/v1", "api_key": OPENAI_UPSTREAM_KEY},
        "an": {"type": "anthropic", "base_url": upstream.url, "api_key": ANTHROPIC_UPSTREAM_KEY},
    }


# ----------------------------------------------------------------- scripted usage


@dataclass(frozen=True)
class Tokens:
    """What the upstream reports. ``input`` counts every input token, cached or not;
    ``cached`` are cache hits (OpenAI ``cached_tokens``, Anthropic
    ``cache_read_input_tokens``), ``cache_write`` cache writes (Anthropic
    ``cache_creation_input_tokens``; ``cache_write_1h`` of them at the 1-hour TTL)."""

    input: int = 17
    output: int = len(PIECES)
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    def openai(self) -> dict[str, Any]:
        """A chat/completions usage object."""
        return {
            "prompt_tokens": self.input,
            "completion_tokens": self.output,
            "total_tokens": self.input + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def embeddings(self) -> dict[str, Any]:
        """An embeddings usage object."""
        return {"prompt_tokens": self.input, "total_tokens": self.input}

    def responses(self) -> dict[str, Any]:
        """A Responses API usage object."""
        return {
            "input_tokens": self.input,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.input + self.output,
        }

    def anthropic(self, output: int | None = None) -> dict[str, Any]:
        """A Messages API usage object (``input_tokens`` excludes cache reads/writes)."""
        usage: dict[str, Any] = {
            "input_tokens": self.input - self.cached - self.cache_write,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cached,
            "output_tokens": self.output if output is None else output,
            "service_tier": "standard",
        }
        if self.cache_write_1h:
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_write - self.cache_write_1h,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            }
        return usage

    def genai(self) -> genai_prices.Usage:
        """The same counts for genai-prices (its ``input_tokens`` includes cache)."""
        values: dict[str, int] = {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cached,
            "cache_write_tokens": self.cache_write,
        }
        if self.cache_write_1h:
            values["cache_write_5m_tokens"] = self.cache_write - self.cache_write_1h
            values["cache_write_1h_tokens"] = self.cache_write_1h
        return genai_prices.Usage(**values)


@dataclass(frozen=True)
class Metered:
    """Answer normally but report ``tokens``; ``delay`` before each stream event (or
    before a JSON body); ``no_usage``: report no usage at all, like a server that ignores
    ``stream_options``; ``delta_input``: Anthropic ``message_delta`` repeats the input
    counts (newer API servers do); ``tail``: wait after the last event before ending the
    stream."""

    tokens: Tokens = field(default_factory=Tokens)
    delay: float = 0.0
    pieces: int | None = None
    words: tuple[str, ...] = ()
    no_usage: bool = False
    delta_input: bool = False
    tail: float = 0.0  # seconds between the last event and the end of the stream
    # Report exactly this usage object (any JSON: wrong types, absurd numbers) instead of
    # one built from ``tokens``; in Anthropic streams it goes into ``message_delta``.
    raw_usage: Any = None


def _sse_json(event: bytes) -> tuple[bytes | None, Any]:
    name = None
    data = b""
    for line in event.splitlines():
        if line.startswith(b"event: "):
            name = line[7:]
        elif line.startswith(b"data: "):
            data = line[6:]
    try:
        return name, orjson.loads(data)
    except orjson.JSONDecodeError:
        return name, None


def _rebuild(name: bytes | None, payload: Any) -> bytes:
    head = b"event: " + name + b"\n" if name is not None else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def metered_events(path: str, model: str, body: Any, behaviour: Metered) -> list[bytes]:
    """The fake's own events for ``path`` with the usage replaced by ``behaviour``'s."""
    tokens = behaviour.tokens
    pieces = PIECES if behaviour.pieces is None else [f" w{i}" for i in range(behaviour.pieces)]
    if behaviour.words:
        pieces = list(behaviour.words)
    if behaviour.no_usage and isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "stream_options"}
    events = {
        "/v1/chat/completions": lambda: chat_events(model, body, pieces),
        "/v1/completions": lambda: completion_events(model, body, pieces),
        "/v1/responses": lambda: responses_events(model, pieces),
        "/v1/messages": lambda: anthropic_events(model, pieces),
    }[path]()
    out = []
    for event in events:
        name, data = _sse_json(event)
        if not isinstance(data, dict):
            out.append(event)
            continue
        kind = data.get("type")
        if behaviour.raw_usage is not None and kind != "message_start":
            if isinstance(data.get("usage"), dict) or kind == "message_delta":
                data["usage"] = behaviour.raw_usage
                event = _rebuild(name, data)
            elif kind == "response.completed":
                data["response"]["usage"] = behaviour.raw_usage
                event = _rebuild(name, data)
        elif path in ("/v1/chat/completions", "/v1/completions"):
            if isinstance(data.get("usage"), dict):
                data["usage"] = tokens.openai()
                if path == "/v1/completions":
                    data["usage"] = {
                        k: v for k, v in data["usage"].items() if not k.endswith("_details")
                    }
                event = _rebuild(name, data)
        elif kind == "response.completed":
            data["response"]["usage"] = None if behaviour.no_usage else tokens.responses()
            event = _rebuild(name, data)
        elif kind == "message_start":
            data["message"]["usage"] = tokens.anthropic(output=1)
            event = _rebuild(name, data)
        elif kind == "message_delta":
            if behaviour.delta_input:
                usage = tokens.anthropic()
                usage.pop("service_tier")
                data["usage"] = usage
            else:
                data["usage"] = {"output_tokens": tokens.output}
            event = _rebuild(name, data)
        out.append(event)
    return out


def metered_body(path: str, model: str, body: Any, behaviour: Metered) -> Any:
    """The fake's own JSON answer for ``path`` with the usage replaced."""
    tokens = behaviour.tokens
    if path == "/v1/messages/count_tokens":
        return {"input_tokens": tokens.input}
    payload: dict[str, Any] = {
        "/v1/chat/completions": lambda: chat_completion(model),
        "/v1/completions": lambda: text_completion(model),
        "/v1/embeddings": lambda: embeddings(model, body),
        "/v1/responses": lambda: response_object(model),
        "/v1/messages": lambda: anthropic_message(model),
    }[path]()
    usage: Any = {
        "/v1/chat/completions": tokens.openai,
        "/v1/completions": lambda: {
            k: v for k, v in tokens.openai().items() if not k.endswith("_details")
        },
        "/v1/embeddings": tokens.embeddings,
        "/v1/responses": tokens.responses,
        "/v1/messages": tokens.anthropic,
    }[path]()
    if behaviour.no_usage:
        payload.pop("usage", None)
    elif behaviour.raw_usage is not None:
        payload["usage"] = behaviour.raw_usage
    else:
        payload["usage"] = usage
    return payload


class MeteredUpstream(FakeUpstream):
    """The shared fake plus the ``Metered`` behaviour (answered here, start to end)."""

    async def _answer(  # type: ignore[override]
        self, request: web.Request, record: Received, behaviour: Any
    ) -> web.StreamResponse:
        if not isinstance(behaviour, Metered):
            return await super()._answer(request, record, behaviour)
        path, body = record.path, record.body
        model = body.get("model", "unknown-model") if isinstance(body, dict) else "unknown"
        stream = isinstance(body, dict) and body.get("stream") is True
        if path in ("/v1/embeddings", "/v1/messages/count_tokens") or not stream:
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            data = orjson.dumps(metered_body(path, model, body, behaviour))
            record.status = 200
            record.sent += data
            record.completed = True
            return web.Response(body=data, content_type="application/json")
        response = web.StreamResponse(status=200)
        response.headers["content-type"] = "text/event-stream; charset=utf-8"
        response.headers["cache-control"] = "no-cache"
        response.enable_chunked_encoding()
        record.status = 200
        await response.prepare(request)
        for event in metered_events(path, model, body, behaviour):
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            await response.write(event)
            record.sent += event
            record.event_times.append(time.monotonic())
        if behaviour.tail:
            await asyncio.sleep(behaviour.tail)
        await response.write_eof()
        record.completed = True
        return response


# ----------------------------------------------------------------- expected costs


def expected_cost(model: str, tokens: Tokens) -> Decimal:
    """The cost computed without the gateway: the config override's rates, or
    genai-prices for the upstream model id and its provider."""
    override = OVERRIDES.get(model)
    if override is not None:
        rates = {k: Decimal(v) for k, v in override.items()}
        uncached = tokens.input - tokens.cached - tokens.cache_write
        input_rate = rates["input_mtok"]
        total = (
            uncached * input_rate
            + tokens.cached * rates.get("cache_read_mtok", input_rate)
            + tokens.cache_write * rates.get("cache_write_mtok", input_rate)
            + tokens.output * rates["output_mtok"]
        )
        return total / Decimal(1_000_000)
    found = genai_prices.calc_price(
        tokens.genai(), UPSTREAM_OF[model], provider_id=PROVIDER_ID[model]
    )
    return found.total_price


def units(count: int | str) -> Decimal:
    """``count`` UNITs in USD."""
    return Decimal(count) * UNIT


def budget(count: int | str) -> str:
    """A budget of ``count`` UNITs, as the API takes it."""
    return str(units(count))


def same_money(actual: Any, expected: Decimal) -> bool:
    """Exact decimal equality of an amount given as a string, number or Decimal."""
    return Decimal(str(actual)) == expected


# ----------------------------------------------------------------- management API


def openai_client(url: str, key: str) -> openai.OpenAI:
    """The official OpenAI SDK pointed at a gateway."""
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT)


def anthropic_client(url: str, key: str) -> anthropic.Anthropic:
    """The official Anthropic SDK pointed at a gateway."""
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT)


def admin_client(url: str, key: str = MASTER_KEY) -> httpx.Client:
    """The management API as ``key``."""
    return httpx.Client(
        base_url=url + "/api/v1",
        headers={"authorization": f"Bearer {key}"},
        timeout=CLIENT_TIMEOUT,
    )


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{os.urandom(4).hex()}"


def new_key(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """Mint a virtual key; the answer carries the secret in ``key``."""
    body.setdefault("name", unique("metering"))
    response = api.post("/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def new_project(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a project with a unique name."""
    body.setdefault("name", unique("proj"))
    response = api.post("/projects", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def spend(api: httpx.Client, **params: Any) -> dict[str, Any]:
    """``GET /api/v1/spend`` (flushes that process's pending records first)."""
    response = api.get("/spend", params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def wait_for_requests(api: httpx.Client, count: int, timeout: float = 10.0, **params: Any) -> Any:
    """Poll the spend report until it holds ``count`` requests (other processes flush on
    their own ~50 ms timer)."""
    deadline = time.monotonic() + timeout
    while True:
        report = spend(api, **params)
        if report["totals"]["requests"] >= count or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def eventually(attempt: Any, accept: Any, timeout: float = 2.0) -> Any:
    """Call ``attempt()`` until ``accept(result)`` or ``timeout``; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if accept(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def spend_rows(db_path: Path, where: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of the ``spend`` table, read straight from SQLite."""
    conn = sqlite3.connect(db_path, timeout=10.0)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM spend WHERE {where} ORDER BY id", args).fetchall()
    finally:
        conn.close()
    return [dict(row) for row in rows]


# ----------------------------------------------------------------- tollway serve


def write_config(path: Path, data_dir: Path, upstream: FakeUpstream, **overrides: Any) -> Path:
    """A gateway config file in front of ``upstream`` with the metering models."""
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(data_dir),
        "log": {"level": "warning", "access": False},
        "timeouts": {"connect": 2.0, "read": 10.0, "stream_idle": 10.0},
        "retry": {"attempts": 0},
        "circuit": {"failures": 1000, "cooldown": 1.0},
        "providers": providers(upstream),
        "models": MODELS,
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# ----------------------------------------------------------------- direct DB writes


async def insert_spend(
    database_url: str,
    *,
    key_id: str,
    project_id: str,
    ts: datetime,
    cost: Decimal,
    model: str = "dollar-gpt",
) -> str:
    """Put one spend record into the gateway's database (as if written by an earlier
    call), through the spend writer's own insert (so its rollups are kept too); returns
    its request id."""
    from tollway.metering.spend_rows import insert_rows, to_row
    from tollway.store.db import Database

    request_id = "req_" + os.urandom(12).hex()
    record = {
        "request_id": request_id,
        "ts": ts.isoformat(),
        "key_id": key_id,
        "project_id": project_id,
        "endpoint": "chat.completions",
        "model": model,
        "provider": "oa",
        "upstream_model": model,
        "input_tokens": 10,
        "output_tokens": 10,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": str(cost),
        "priced": True,
        "estimated": False,
        "status": 200,
        "latency_ms": 1.0,
        "stream": False,
        "cached": False,
        "metadata": {},
    }
    db = Database(database_url)
    try:
        await insert_rows(db, [to_row(record)])
    finally:
        await db.aclose()
    return request_id


# ----------------------------------------------------------------- pipelined requests


def pipelined(port: int, path: str, body: dict[str, Any], secret: str, count: int = 2) -> list[int]:
    """Send ``count`` identical requests in one write on one keep-alive connection
    (HTTP/1.1 pipelining): the server starts each as soon as the previous response is
    complete, with no client round trip in between. Returns the statuses in order."""
    data = orjson.dumps(body)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    statuses: list[int] = []
    buffer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(request * count)
        while len(statuses) < count:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, "the connection closed early"
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            statuses.append(int(lines[0].split()[1]))
            fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
            length = int(fields["content-length"])
            while len(buffer) < length:
                chunk = sock.recv(65536)
                assert chunk, "the connection closed early"
                buffer += chunk
            buffer = buffer[length:]
    return statuses
