"""The transport's connection slots: waited for at most ``timeouts.pool``, and given back
exactly once on every way a response can end (read, streamed, released, aborted,
cancelled, failed). Each test uses a one-slot transport: a slot not given back makes the
next request fail with UpstreamBusy."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from fake_upstream import CutMidStream, FakeUpstream, Reply, SlowEvents, Stall, closed_port
from tollway.config import Timeouts
from tollway.errors import UpstreamBusy, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tollway.providers.transport import RESPONSE_TOO_LARGE, Transport, UpstreamResponse
from tollway.routing.retry import retryable, unhealthy

POOL_WAIT = 0.2
LIMIT = 16 * 1024
HEADERS = {"content-type": "application/json"}
WHOLE = orjson.dumps({"model": "m", "messages": []})
STREAM = orjson.dumps({"model": "m", "messages": [], "stream": True})


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """One slot, a short pool wait, a 16 KiB answer limit."""
    timeouts = Timeouts(connect=1.0, read=1.0, stream_idle=1.0, pool=POOL_WAIT)
    pooled = Transport("up", timeouts, max_connections=1, max_response_bytes=LIMIT)
    yield pooled
    await pooled.aclose()


def url(fake: FakeUpstream) -> str:
    return fake.url + "/v1/chat/completions"


async def post(transport: Transport, fake: FakeUpstream, *, stream: bool) -> UpstreamResponse:
    return await transport.post(url(fake), HEADERS, STREAM if stream else WHOLE, stream=stream)


async def assert_slot_free(transport: Transport, fake: FakeUpstream) -> None:
    """The one slot is free: a request gets it at once."""
    started = time.monotonic()
    response = await post(transport, fake, stream=False)
    assert time.monotonic() - started < POOL_WAIT
    assert response.status == 200
    assert orjson.loads(await response.read())["object"] == "chat.completion"


async def test_read_gives_the_slot_back(transport: Transport, fake: FakeUpstream) -> None:
    for _ in range(3):
        await assert_slot_free(transport, fake)


@pytest.mark.parametrize("gzip", [False, True])
async def test_answer_over_the_limit(transport: Transport, fake: FakeUpstream, gzip: bool) -> None:
    fake.script(Reply(words=("x" * 2 * LIMIT,), gzip=gzip))
    response = await post(transport, fake, stream=False)
    with pytest.raises(UpstreamError) as raised:
        await response.read()
    assert raised.value.code == RESPONSE_TOO_LARGE
    assert raised.value.status == 502
    assert f"{LIMIT:,} bytes" in raised.value.message
    assert not retryable(raised.value)
    assert not unhealthy(raised.value)
    await assert_slot_free(transport, fake)


async def test_stream_read_to_the_end(transport: Transport, fake: FakeUpstream) -> None:
    response = await post(transport, fake, stream=True)
    body = b"".join([chunk async for chunk in response.chunks()])
    assert body.endswith(b"data: [DONE]\n\n")
    await assert_slot_free(transport, fake)


async def test_stream_closed_early_drops_the_connection(
    transport: Transport, fake: FakeUpstream
) -> None:
    fake.script(SlowEvents(0.1))
    response = await post(transport, fake, stream=True)
    chunks = response.chunks()
    assert await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(fake.wait_for, lambda: fake.requests[0].dropped_at is not None)
    await assert_slot_free(transport, fake)


async def test_stream_reader_cancelled(transport: Transport, fake: FakeUpstream) -> None:
    fake.script(SlowEvents(0.3))
    response = await post(transport, fake, stream=True)

    async def consume() -> None:
        async for _ in response.chunks():
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_slot_free(transport, fake)


async def test_stream_cut_by_the_upstream(transport: Transport, fake: FakeUpstream) -> None:
    fake.script(CutMidStream(after_events=2))
    response = await post(transport, fake, stream=True)
    with pytest.raises(UpstreamError):
        async for _ in response.chunks():
            pass
    await assert_slot_free(transport, fake)


@pytest.mark.parametrize("end", ["release", "abort"])
async def test_release_and_abort_without_reading(
    transport: Transport, fake: FakeUpstream, end: str
) -> None:
    response = await post(transport, fake, stream=True)
    getattr(response, end)()
    getattr(response, end)()  # a second call gives nothing back twice
    await assert_slot_free(transport, fake)
    # Still exactly one slot: a second request waits while the first holds it.
    held = await post(transport, fake, stream=True)
    with pytest.raises(UpstreamBusy):
        await post(transport, fake, stream=False)
    held.abort()


async def test_connect_refused(fake: FakeUpstream, transport: Transport) -> None:
    with pytest.raises(UpstreamUnavailable):
        await transport.post(
            f"http://127.0.0.1:{closed_port()}/v1/chat/completions", HEADERS, WHOLE, stream=False
        )
    await assert_slot_free(transport, fake)


async def test_no_answer_in_time(fake: FakeUpstream, transport: Transport) -> None:
    fake.script(Stall(3))
    with pytest.raises(UpstreamTimeout):
        await post(transport, fake, stream=False)
    await assert_slot_free(transport, fake)


async def test_cancelled_while_waiting_for_headers(
    fake: FakeUpstream, transport: Transport
) -> None:
    fake.script(Stall(3))
    task = asyncio.create_task(post(transport, fake, stream=False))
    assert await asyncio.to_thread(fake.wait_for, lambda: len(fake.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_slot_free(transport, fake)


async def test_busy_pool_is_upstream_busy(fake: FakeUpstream, transport: Transport) -> None:
    held = await post(transport, fake, stream=True)
    started = time.monotonic()
    with pytest.raises(UpstreamBusy) as raised:
        await post(transport, fake, stream=False)
    assert POOL_WAIT <= time.monotonic() - started < POOL_WAIT + 0.5
    error = raised.value
    assert (error.status, error.code) == (503, "upstream_pool_exhausted")
    assert "1 connections to provider 'up'" in error.message
    assert retryable(error)  # another deployment may have room
    assert not unhealthy(error)  # but this one is not sick
    assert len(fake.requests) == 1  # the waiting request never went out
    held.release()
    await assert_slot_free(transport, fake)


async def test_a_waiter_gets_the_slot_when_it_frees(
    fake: FakeUpstream, transport: Transport
) -> None:
    held = await post(transport, fake, stream=True)
    waiting = asyncio.create_task(post(transport, fake, stream=False))
    await asyncio.sleep(POOL_WAIT / 4)
    assert not waiting.done()
    async for _ in held.chunks():
        pass
    response = await waiting
    assert response.status == 200
    await response.read()
    await assert_slot_free(transport, fake)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_forgotten_response_gives_its_slot_back(
    fake: FakeUpstream, transport: Transport
) -> None:
    response = await post(transport, fake, stream=False)
    del response
    gc.collect()
    await assert_slot_free(transport, fake)
