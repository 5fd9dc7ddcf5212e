"""What an upstream can do to the gateway's connection pool and memory, bounded.

- Hundreds of slow streams share one pool without a single failure, and calls queued
  for a pooled connection longer than the connect timeout still succeed; when the pool
  is truly exhausted the overflow is a 503 ``upstream_pool_exhausted`` and the
  deployment's circuit stays closed (a busy gateway is not a sick upstream).
- A non-streamed answer over ``max_response_bytes`` is a 502, in both dialects.
- A stream event over ``max_event_bytes`` ends the stream with one error event.
- The stream meter keeps a bounded prefix of a long stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from checks import assert_no_leak, dialect_error, openai_error, sse_events
from fake_upstream import FakeUpstream, Reply, SlowEvents
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
    GatewayServer,
    gateway_settings,
)
from tollway.dialects.endpoints import Endpoint
from tollway.metering.stream_meter import StreamMeter
from tollway.providers.bedrock import BedrockStreamMeter
from tollway.providers.gemini import GeminiStreamMeter

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": GPT, "messages": MESSAGES}),
    "anthropic": ("/v1/messages", {"model": CLAUDE, "max_tokens": 20, "messages": MESSAGES}),
}
DIALECTS = list(CALLS)
KIB = 1024
LIMIT = 64 * KIB
POOL = 4
POOL_WAIT = 0.3
CIRCUIT_FAILURES = 3
QUEUED = "gpt-queued"  # 4 connections too, but the default 60 s wait for one
# Each slow stream: 7 events (role, 3 pieces, finish, usage, [DONE]), one per 0.2 s.
SLOW = SlowEvents(0.2, pieces=3)


@pytest.fixture(scope="module")
def bounded(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway with small limits: 64 KiB answers and events, 4 connections to ``oa``
    waited for at most 0.3 s (to ``queue``: for the default 60 s), and circuits that open
    after 3 unhealthy failures."""
    upstream = fake_server.url
    settings = gateway_settings(
        fake_server,
        tmp_path_factory.mktemp("bounded"),
        max_response_bytes=LIMIT,
        max_event_bytes=LIMIT,
        timeouts={"connect": 1.0, "read": 2.0, "stream_idle": 1.0, "pool": POOL_WAIT},
        circuit={"failures": CIRCUIT_FAILURES, "cooldown": 60.0},
        providers={
            "oa": {
                "type": "openai",
                "base_url": upstream + "/v1",
                "api_key": OPENAI_UPSTREAM_KEY,
                "max_connections": POOL,
            },
            "an": {"type": "anthropic", "base_url": upstream, "api_key": ANTHROPIC_UPSTREAM_KEY},
            "queue": {
                "type": "openai",
                "base_url": upstream + "/v1",
                "api_key": OPENAI_UPSTREAM_KEY,
                "max_connections": POOL,
                "timeouts": {"connect": 1.0, "read": 2.0, "stream_idle": 1.0},
            },
        },
        models=[
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": QUEUED, "provider": "queue", "model": GPT_UPSTREAM},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
        ],
    )
    server = GatewayServer(settings).start()
    yield server.url
    server.stop()


@pytest.fixture
async def client(bounded: str) -> AsyncIterator[httpx.AsyncClient]:
    """An async client for the bounded gateway."""
    async with httpx.AsyncClient(base_url=bounded, timeout=10.0) as http:
        yield http


def stream_body(dialect: str) -> tuple[str, dict[str, Any]]:
    path, body = CALLS[dialect]
    return path, {**body, "stream": True}


async def deployments(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/providers``: each deployment by ``provider/model``."""
    response = await client.get("/api/v1/providers", headers=AUTH)
    assert response.status_code == 200, response.text
    return {
        f"{d['provider']}/{d['model']}": d
        for provider in response.json()["providers"]
        for d in provider["deployments"]
    }


async def failures(client: httpx.AsyncClient) -> dict[str, int]:
    """Unhealthy failures counted so far, per deployment; every circuit is closed."""
    health = await deployments(client)
    for label, deployment in health.items():
        assert deployment["state"] == "closed", (label, deployment)
    return {label: deployment["failures"] for label, deployment in health.items()}


async def assert_usable(client: httpx.AsyncClient, dialect: str) -> None:
    path, body = CALLS[dialect]
    response = await client.post(path, json=body, headers=AUTH)
    assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- the pool


@pytest.fixture(scope="module")
def roomy(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway with the default pool and generous timeouts.

    Gateway, fake upstream and 500 clients share one test process and its GIL: on a
    loaded host a stream can fall silent for over the shared gateway's 1 s idle timeout
    without anything being wrong with the pool this test is about.
    """
    settings = gateway_settings(
        fake_server,
        tmp_path_factory.mktemp("roomy"),
        timeouts={"connect": 10.0, "read": 30.0, "stream_idle": 30.0},
    )
    server = GatewayServer(settings).start()
    yield server.url
    server.stop()


async def test_500_slow_streams_share_the_default_pool(roomy: str, fake: FakeUpstream) -> None:
    """500 streams at once through the default pool all finish; the circuit stays closed."""
    fake.script(SLOW, persistent=True)
    path, body = stream_body("openai")
    # httpx's pool slows down with hundreds of connections in one client: spread them.
    clients = [
        httpx.AsyncClient(
            base_url=roomy,
            timeout=60.0,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        for _ in range(10)
    ]
    turns = itertools.cycle(clients)

    async def one() -> tuple[int, bytes]:
        async with next(turns).stream("POST", path, json=body, headers=AUTH) as response:
            return response.status_code, await response.aread()

    try:
        results = await asyncio.gather(*(one() for _ in range(500)))
        failed = [(status, raw[:300]) for status, raw in results if status != 200]
        assert not failed, failed
        for _, raw in results:
            events = sse_events(raw)
            assert events[-1] == b"data: [DONE]\n\n"
            assert len(events) == 6  # the gateway strips the usage chunk it asked for
        assert len(fake.requests) == 500
        assert all(r.completed for r in fake.requests)
        health = await deployments(clients[0])
        assert health[f"oa/{GPT_UPSTREAM}"]["state"] == "closed"
    finally:
        for http in clients:
            await http.aclose()


async def test_waiting_for_a_connection_is_not_a_connect_timeout(
    client: httpx.AsyncClient, fake: FakeUpstream
) -> None:
    """20 streams of about 0.35 s through 4 connections: the last wait about 1.4 s for
    one, longer than the 1 s connect timeout (which once covered that wait: 504s)."""
    fake.script(SlowEvents(0.05, pieces=3), persistent=True)
    path, body = stream_body("openai")
    before = await failures(client)
    answers = await asyncio.gather(
        *(client.post(path, json={**body, "model": QUEUED}, headers=AUTH) for _ in range(20))
    )
    assert [a.status_code for a in answers] == [200] * 20, [a.text[:200] for a in answers]
    assert all(sse_events(a.content)[-1] == b"data: [DONE]\n\n" for a in answers)
    first, last = min(r.at for r in fake.requests), max(r.at for r in fake.requests)
    assert last - first > 1.0  # the last ones did wait longer than the connect timeout
    assert await failures(client) == before


async def test_exhausted_pool_is_503_and_the_circuit_stays_closed(
    bounded: str, client: httpx.AsyncClient, fake: FakeUpstream
) -> None:
    fake.script(SLOW, persistent=True)
    path, body = stream_body("openai")
    before = await failures(client)

    async def stream() -> tuple[int, bytes]:
        async with client.stream("POST", path, json=body, headers=AUTH) as response:
            return response.status_code, await response.aread()

    holders = [asyncio.create_task(stream()) for _ in range(POOL)]
    deadline = time.monotonic() + 5
    while len(fake.requests) < POOL and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(fake.requests) == POOL

    started = time.monotonic()
    overflow = await asyncio.gather(
        *(client.post(path, json=body, headers=AUTH) for _ in range(3)),
        *(client.post(path, json={**body, "stream": False}, headers=AUTH) for _ in range(3)),
    )
    waited = time.monotonic() - started
    assert len(overflow) > CIRCUIT_FAILURES  # had they counted, the circuit would be open
    for response in overflow:
        error = openai_error(response, 503)
        assert error["code"] == "upstream_pool_exhausted"
        assert "oa" in error["message"]
    # Bounded by the pool wait, long before a slot would have come free.
    assert POOL_WAIT <= waited < 1.2
    assert len(fake.requests) == POOL  # the overflow never reached the upstream

    sdk = openai.AsyncOpenAI(base_url=bounded + "/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(
            model=GPT,
            messages=MESSAGES,
        )
    await sdk.close()
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_pool_exhausted"

    assert await failures(client) == before

    for status, raw in await asyncio.gather(*holders):
        assert status == 200
        assert sse_events(raw)[-1] == b"data: [DONE]\n\n"
    fake.reset()
    # Every slot came back: the whole pool is usable at once.
    answers = await asyncio.gather(
        *(client.post(path, json={**body, "stream": False}, headers=AUTH) for _ in range(POOL))
    )
    assert [a.status_code for a in answers] == [200] * POOL
    assert await failures(client) == before


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_answer_over_max_response_bytes_is_502(
    client: httpx.AsyncClient, fake: FakeUpstream, dialect: str, encoding: str
) -> None:
    """With a declared length the answer is refused at its headers; gzipped (a small
    declared length) it is counted as it is decompressed."""
    before = await failures(client)
    fake.script(Reply(words=("x" * (LIMIT + KIB),), gzip=encoding == "gzip"))
    path, body = CALLS[dialect]
    response = await client.post(path, json=body, headers=AUTH)
    error = dialect_error(dialect, response, 502)
    assert f"{LIMIT:,} bytes" in error["message"]
    assert "max_response_bytes" in error["message"]
    if dialect == "openai":
        assert error["code"] == "upstream_response_too_large"
    else:
        assert error["type"] == "api_error"
    await assert_usable(client, dialect)
    assert await failures(client) == before  # a large answer says nothing of health


async def test_answer_just_under_the_limit_passes(
    client: httpx.AsyncClient, fake: FakeUpstream
) -> None:
    fake.script(Reply(words=("y" * (LIMIT - 2 * KIB),)))
    path, body = CALLS["openai"]
    response = await client.post(path, json=body, headers=AUTH)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == "y" * (LIMIT - 2 * KIB)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_event_over_max_event_bytes_ends_the_stream(
    client: httpx.AsyncClient, fake: FakeUpstream, dialect: str
) -> None:
    fake.script(Reply(words=("small", "z" * (LIMIT + KIB), "never")))
    path, body = stream_body(dialect)
    async with client.stream("POST", path, json=body, headers=AUTH) as response:
        assert response.status_code == 200
        raw = await response.aread()
    assert_no_leak(raw)
    events = sse_events(raw)
    assert b"small" in b"".join(events[:-1])
    assert b"zzzz" not in raw and b"never" not in raw
    errors = [e for e in events if b'"error"' in e]
    assert errors == [events[-1]]
    if dialect == "anthropic":
        assert events[-1].startswith(b"event: error\ndata: ")
        error = json.loads(events[-1].split(b"data: ", 1)[1])["error"]
        assert error["type"] == "api_error"
    else:
        error = json.loads(events[-1].removeprefix(b"data: "))["error"]
        assert error["code"] == "upstream_event_too_large"
    assert f"{LIMIT:,} bytes" in error["message"]
    assert "max_event_bytes" in error["message"]
    await assert_usable(client, dialect)


async def test_sdks_see_the_event_error(bounded: str, fake: FakeUpstream) -> None:
    huge = ("z" * (LIMIT + KIB),)
    oai = openai.AsyncOpenAI(base_url=bounded + "/v1", api_key=MASTER_KEY, max_retries=0)
    fake.script(Reply(words=huge))
    with pytest.raises(openai.APIError) as raised:
        async for _ in await oai.chat.completions.create(
            model=GPT,
            messages=MESSAGES,
            stream=True,
        ):
            pass
    assert "max_event_bytes" in raised.value.message
    await oai.close()

    claude = anthropic.AsyncAnthropic(base_url=bounded, api_key=MASTER_KEY, max_retries=0)
    fake.script(Reply(words=huge))
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with claude.messages.stream(
            model=CLAUDE,
            max_tokens=20,
            messages=MESSAGES,
        ) as stream:
            async for _ in stream:
                pass
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    await claude.close()


# --------------------------------------------------------------------------- the meter


def chat_event(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize("meter_type", [StreamMeter, GeminiStreamMeter, BedrockStreamMeter])
def test_stream_meter_keeps_a_bounded_prefix(meter_type: type[StreamMeter]) -> None:
    cap = 64 * KIB
    endpoint = {
        StreamMeter: Endpoint.CHAT_COMPLETIONS,
        GeminiStreamMeter: Endpoint.GENERATE_CONTENT,
        BedrockStreamMeter: Endpoint.CONVERSE,
    }[meter_type]
    meter = meter_type(endpoint, False, retain_bytes=cap)
    event = chat_event(" word" * 20)
    sent = 0
    for _ in range(10_000):  # about 1.4 MB
        meter.observe(event)
        sent += len(event)
    assert meter.retained_bytes <= cap
    assert sum(len(e) for e in meter.events) == meter.retained_bytes
    assert meter.retained_bytes + meter.dropped_bytes == sent
    kept = len(meter.events)
    assert kept == cap // len(event)
    # The estimate covers the whole stream, in proportion to the bytes dropped.
    assert meter.scale_estimate(kept * 20) == pytest.approx(10_000 * 20, rel=0.001)


def test_stream_meter_estimate_without_drops_is_unchanged() -> None:
    meter = StreamMeter(Endpoint.CHAT_COMPLETIONS, False)
    meter.observe(chat_event("Hello"))
    assert meter.dropped_bytes == 0
    assert meter.generated_text() == "Hello"
    assert meter.scale_estimate(1) == 1


def test_stream_meter_with_nothing_kept_estimates_from_bytes() -> None:
    meter = StreamMeter(Endpoint.CHAT_COMPLETIONS, False, retain_bytes=16)
    event = chat_event("x" * 400)
    meter.observe(event)
    assert meter.events == []
    assert meter.scale_estimate(0) == len(event) // 4


def test_default_retention_is_four_mib() -> None:
    meter = StreamMeter(Endpoint.MESSAGES, False)
    event = b"event: content_block_delta\ndata: " + b"{}" * 32 * KIB + b"\n\n"
    for _ in range(200):  # about 12.8 MiB
        meter.observe(event)
    assert meter.retained_bytes <= 4 * KIB * KIB < meter.retained_bytes + len(event)
