"""RedisCache against real Redis servers: the shared one (under a prefix of the test's
own, deleted afterwards) and a private one the test stops. Redis failing, hanging or
holding something else is a miss, never an error."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from services import PrivateRedis, stopped
from tollway.cache.codec import MAGIC
from tollway.cache.entry import Entry, Tokens
from tollway.cache.store import RedisCache
from tollway.dialects.endpoints import Endpoint

EVENTS = tuple(
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"word ' + str(n).encode() + b'"}}]}\n\n'
    for n in range(200)
)
STREAMED = Entry(Endpoint.CHAT_COMPLETIONS, Tokens(10, 200, 2), 1755440000.25, events=EVENTS)
WHOLE = Entry(Endpoint.MESSAGES, Tokens(3, 4), 1755440001.5, body=b'{"type":"message"}')


def client(url: str) -> Redis:
    """A client configured like the gateway's (app.py): short timeouts, retried connects."""
    return Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError],
    )


@pytest.fixture
async def shared(shared_redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    """A client of the shared Redis and a key prefix of this test's own (removed after)."""
    redis = client(shared_redis_url)
    prefix = f"tollway-test:cache:{uuid.uuid4().hex}:"
    try:
        yield redis, prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_entries_round_trip_with_their_lifetime(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    cache = RedisCache(redis, prefix)
    await cache.put("streamed", STREAMED, ttl=60)
    await cache.put("whole", WHOLE, ttl=2.5)
    assert await cache.get("streamed") == STREAMED
    assert await cache.get("whole") == WHOLE
    assert await cache.get("missing") is None
    assert 59_000 < await redis.pttl(prefix + "streamed") <= 60_000
    assert 2_000 < await redis.pttl(prefix + "whole") <= 2_500  # milliseconds kept
    stored = await redis.get(prefix + "streamed")
    assert isinstance(stored, bytes) and stored.startswith(MAGIC)
    # Repetitive stream events are stored deflated.
    assert len(stored) < sum(map(len, EVENTS)) / 4


async def test_entries_expire(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    cache = RedisCache(redis, prefix)
    await cache.put("k", WHOLE, ttl=0.2)
    assert await cache.get("k") == WHOLE
    await asyncio.sleep(0.35)
    assert await cache.get("k") is None
    await cache.put("never", WHOLE, ttl=0)
    assert await redis.exists(prefix + "never") == 0


async def test_oversized_entries_are_not_stored(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    cache = RedisCache(redis, prefix, max_entry_bytes=STREAMED.size - 1)
    await cache.put("big", STREAMED, ttl=60)
    await cache.put("small", WHOLE, ttl=60)
    assert await redis.exists(prefix + "big") == 0
    assert await cache.get("small") == WHOLE


async def test_a_value_that_is_not_an_entry_is_a_miss(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    cache = RedisCache(redis, prefix)
    await redis.set(prefix + "text", b"hello")
    await redis.set(prefix + "cut", MAGIC + b"r" + b'{"e":"messages"')
    await redis.hset(prefix + "hash", "a", "b")  # WRONGTYPE for GET
    for key in ("text", "cut", "hash"):
        assert await cache.get(key) is None
    # The next lookup still reaches Redis (a wrong type is Redis answering, not down).
    await cache.put("ok", WHOLE, ttl=60)
    assert await cache.get("ok") == WHOLE


async def test_a_client_that_decodes_replies_gets_misses(shared_redis_url: str) -> None:
    prefix = f"tollway-test:cache:{uuid.uuid4().hex}:"
    redis = Redis.from_url(shared_redis_url, decode_responses=True)
    try:
        cache = RedisCache(redis, prefix)
        await redis.set(prefix + "k", "twc1r not ours")
        assert await cache.get("k") is None
    finally:
        await redis.delete(prefix + "k")
        await redis.aclose()


async def test_redis_down_is_a_miss_and_comes_back(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    redis = client(private_redis.url)
    cache = RedisCache(redis, "t:", pause=0.2)
    try:
        await cache.put("k", WHOLE, ttl=60)
        assert await cache.get("k") == WHOLE
        with caplog.at_level(logging.WARNING, "tollway.cache"), stopped(private_redis):
            started = time.perf_counter()
            assert await cache.get("k") is None
            await cache.put("k2", WHOLE, ttl=60)  # dropped, not raised
            assert await cache.get("k2") is None
            assert time.perf_counter() - started < 1.0
        warnings = [r for r in caplog.records if r.name == "tollway.cache"]
        assert len(warnings) == 1  # once per outage, not once per call
        assert warnings[0].fields["operation"] == "redis get"  # type: ignore[attr-defined]
        await asyncio.sleep(0.25)  # the pause after a failure
        await cache.put("k3", WHOLE, ttl=60)  # a restarted Redis is empty
        assert await cache.get("k") is None and await cache.get("k3") == WHOLE
    finally:
        await redis.aclose()


async def test_hung_redis_is_a_miss_within_the_timeout() -> None:
    """A Redis that accepts connections and never answers: the lookup gives up in time,
    and for the pause after that, lookups do not wait at all."""
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(-1)  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = client(f"redis://127.0.0.1:{port}/0")
    cache = RedisCache(redis, "t:", timeout=0.1, pause=30)
    try:
        started = time.perf_counter()
        assert await cache.get("k") is None
        assert 0.1 <= time.perf_counter() - started < 0.5
        seen = connections
        started = time.perf_counter()
        assert await cache.get("k") is None
        await cache.put("k", WHOLE, ttl=60)
        assert time.perf_counter() - started < 0.01
        assert connections == seen
    finally:
        await redis.aclose()
        server.close()
        await server.wait_closed()
