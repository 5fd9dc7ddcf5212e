"""Stream framing with a bound on each event: SSE (``EventSplitter``, also used for
Gemini) and AWS event streams (Bedrock's ``MessageFrames``)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

import pytest
from provider_support import FakeUpstream, Reply, call, converse_event, event_message, split

from tollway.dialects.endpoints import Endpoint
from tollway.errors import UpstreamError
from tollway.providers.base import Provider
from tollway.providers.bedrock import EVENT_STREAM, MalformedStream, MessageFrames
from tollway.sse import EVENT_TOO_LARGE, EventSplitter

MIB = 1024 * 1024
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def split_at_once(data: bytes) -> tuple[list[bytes], bytes]:
    """Events and rest of ``data`` split in one go: what any chunking must give."""
    events, start = [], 0
    for match in _BOUNDARY.finditer(data):
        events.append(data[start : match.end()])
        start = match.end()
    return events, data[start:]


def test_any_chunking_gives_the_same_events() -> None:
    pieces = [b"data: x", b"\n", b"\r", b"\r\n", b"y", b"event: e\n"]
    rng = random.Random(7)
    for _ in range(5000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        splitter = EventSplitter(1024)
        events: list[bytes] = []
        at = 0
        while at < len(data):
            size = rng.randint(1, 7)
            events += splitter.feed(data[at : at + size])
            at += size
        assert (events, splitter.rest()) == split_at_once(data), data


def test_event_over_the_limit_in_one_chunk() -> None:
    splitter = EventSplitter(1024)
    small = b"data: small\n\n"
    huge = b"data: " + b"x" * 2000 + b"\n\n"
    # The events before it come out first; the next call raises.
    assert splitter.feed(small + huge + small) == [small]
    with pytest.raises(UpstreamError) as raised:
        splitter.feed(small)
    assert raised.value.code == EVENT_TOO_LARGE
    assert "1,024 bytes" in raised.value.message
    with pytest.raises(UpstreamError):
        splitter.rest()


def test_incomplete_event_raises_as_soon_as_it_passes_the_limit() -> None:
    splitter = EventSplitter(4096)
    assert splitter.feed(b"data: ") == []
    for _ in range(3):
        assert splitter.feed(b"x" * 1024) == []
    with pytest.raises(UpstreamError) as raised:
        splitter.feed(b"x" * 1024)
    assert raised.value.code == EVENT_TOO_LARGE


def test_event_of_exactly_the_limit_passes() -> None:
    event = b"data: " + b"x" * (1024 - 8) + b"\n\n"
    assert len(event) == 1024
    splitter = EventSplitter(1024)
    assert [e for piece in split(event, 100) for e in splitter.feed(piece)] == [event]


def test_a_big_event_in_small_chunks_takes_linear_time() -> None:
    """8 MiB in 4 KiB chunks: joining the buffer on every chunk took about a minute."""
    event = b"data: " + b"x" * (8 * MIB - 8) + b"\n\n"
    splitter = EventSplitter(8 * MIB)
    started = time.perf_counter()
    got = [e for piece in split(event, 4096) for e in splitter.feed(piece)]
    assert time.perf_counter() - started < 2.0
    assert got == [event]


async def test_gemini_stream_event_over_the_limit(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    first = b'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}\r\n\r\n'
    huge = b'data: {"candidates": [{"content": {"parts": [{"text": "' + b"x" * 4096
    upstream.script(
        Reply(chunks=[first, *split(huge, 512)], content_type="text/event-stream"),
        Reply(chunks=[first + huge], content_type="text/event-stream"),
    )
    provider = provider_factory("gemini", api_key="k", base_url=upstream.url + "/v1beta")
    provider.bound(max_response_bytes=MIB, max_event_bytes=2048)
    for _ in range(2):  # in many chunks, and all in one
        response = await provider.send(call(Endpoint.GENERATE_CONTENT, {}, stream=True))
        events = []
        with pytest.raises(UpstreamError) as raised:
            async for event in provider.stream_events(response):
                events.append(event)
        assert events == [first]
        assert raised.value.code == EVENT_TOO_LARGE


# ------------------------------------------------------------------ AWS event streams


def delta(text: str) -> bytes:
    return converse_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})


def test_frames_from_any_chunking() -> None:
    messages = [delta("a" * n) for n in (1, 50, 300, 7)]
    wire = b"".join(messages)
    for size in (1, 5, 13, 64, len(wire)):
        frames = MessageFrames(1024)
        got = [frame for piece in split(wire, size) for frame in frames.feed(piece)]
        assert got == messages
        assert frames.rest() == 0


def test_message_over_the_limit_is_refused_at_its_prelude() -> None:
    small, huge = delta("hi"), delta("x" * 5000)
    frames = MessageFrames(4096)
    # Only the huge message's 12-byte prelude has arrived: that is enough to refuse it.
    assert frames.feed(small + huge[:12]) == [small]
    with pytest.raises(UpstreamError) as raised:
        frames.feed(huge[12:100])
    assert raised.value.code == EVENT_TOO_LARGE
    assert "4,096 bytes" in raised.value.message
    with pytest.raises(UpstreamError):
        frames.rest()  # the stream may end there: still reported


def test_a_bad_prelude_is_malformed() -> None:
    garbled = bytearray(event_message({":message-type": "event"}, b"{}"))
    garbled[5] ^= 0xFF  # the headers' length no longer matches the prelude's CRC
    with pytest.raises(MalformedStream):
        MessageFrames(4096).feed(bytes(garbled))


def test_a_big_message_in_small_chunks_takes_linear_time() -> None:
    message = delta("x" * (8 * MIB))
    frames = MessageFrames(9 * MIB)
    started = time.perf_counter()
    got = [frame for piece in split(message, 4096) for frame in frames.feed(piece)]
    assert time.perf_counter() - started < 2.0
    assert got == [message]


async def test_bedrock_stream_event_over_the_limit(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    wire = delta("hi") + delta("x" * 4096)
    upstream.script(
        Reply(chunks=split(wire, 256), content_type=EVENT_STREAM),
        Reply(chunks=[wire], content_type=EVENT_STREAM),
    )
    provider = provider_factory(
        "bedrock",
        region="eu-west-3",
        base_url=upstream.url,
        aws_access_key_id="AKIAEXAMPLEKEY000001",
        aws_secret_access_key="secret",
    )
    provider.bound(max_response_bytes=MIB, max_event_bytes=2048)
    for _ in range(2):  # in many chunks, and all in one
        response = await provider.send(call(Endpoint.CONVERSE, {}, model="m", stream=True))
        events = []
        with pytest.raises(UpstreamError) as raised:
            async for event in provider.stream_events(response):
                events.append(event)
        assert len(events) == 1
        assert b'"text":"hi"' in events[0]
        assert raised.value.code == EVENT_TOO_LARGE
