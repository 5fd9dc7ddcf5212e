"""Streams pass through faithfully: byte for byte, one flush per event, and every way a
stream can go wrong ends in a well-formed error event in the client's dialect."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from checks import assert_no_leak, dialect_error, sse_events
from fake_upstream import (
    PIECES,
    TEXT,
    CutMidStream,
    FakeUpstream,
    Respond,
    SlowEvents,
    SplitEvents,
    Stall,
    StallMidStream,
    Truncate,
    anthropic_events,
    chat_events,
    completion_events,
    responses_events,
)
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
    GatewayServer,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "Say hello."}]

STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": GPT, "messages": MESSAGES, "stream": True}),
    "chat+usage": (
        "/v1/chat/completions",
        {
            "model": GPT,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "completions": ("/v1/completions", {"model": GPT, "prompt": "Say hello.", "stream": True}),
    "responses": ("/v1/responses", {"model": GPT, "input": "Say hello.", "stream": True}),
    "messages": (
        "/v1/messages",
        {"model": CLAUDE, "max_tokens": 50, "messages": MESSAGES, "stream": True},
    ),
}


def upstream_events(kind: str) -> list[bytes]:
    """The events the upstream API sends for this request as the client made it.

    The gateway may ask the upstream for more (usage on OpenAI streams) but must hand the
    client exactly these bytes.
    """
    _, body = STREAMS[kind]
    if kind.startswith("chat"):
        return chat_events(GPT_UPSTREAM, body, PIECES)
    if kind == "completions":
        return completion_events(GPT_UPSTREAM, body, PIECES)
    if kind == "responses":
        return responses_events(GPT_UPSTREAM, PIECES)
    return anthropic_events(CLAUDE_UPSTREAM, PIECES)


def read_stream(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    """POST and collect (arrival time, raw chunk) pairs until the stream ends."""
    chunks: list[tuple[float, bytes]] = []
    with http.stream("POST", path, json=body, headers=AUTH) as response:
        for chunk in response.iter_raw():
            chunks.append((time.monotonic(), chunk))
    return response, chunks


def event_arrivals(chunks: list[tuple[float, bytes]]) -> list[float]:
    """When each complete event reached the client."""
    times, buffer = [], b""
    for at, chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            _, buffer = buffer.split(b"\n\n", 1)
            times.append(at)
    return times


def error_event(dialect: str, event: bytes) -> dict[str, Any]:
    """Parse a stream error event in ``dialect`` and return its ``error`` object."""
    assert_no_leak(event)
    if dialect == "anthropic":
        assert event.startswith(b"event: error\ndata: ")
        payload = json.loads(event.split(b"data: ", 1)[1])
        assert payload["type"] == "error"
        assert set(payload["error"]) >= {"type", "message"}
        return dict(payload["error"])
    assert event.startswith(b"data: ")
    payload = json.loads(event[len(b"data: ") :])
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "code", "param"}
    return dict(payload["error"])


def assert_healthy(http: httpx.Client) -> None:
    """A plain call still works after whatever went wrong before."""
    body = {"model": GPT, "messages": MESSAGES}
    response = http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == TEXT


# --------------------------------------------------------------------------- faithful


@pytest.mark.parametrize("kind", list(STREAMS))
def test_events_pass_through_byte_identical(
    http: httpx.Client, fake: FakeUpstream, kind: str
) -> None:
    path, body = STREAMS[kind]
    response, chunks = read_stream(http, path, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    received = b"".join(chunk for _, chunk in chunks)
    assert received == b"".join(upstream_events(kind))


def test_crlf_framed_events_and_comments_pass_through(
    http: httpx.Client, oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "crlf"}, "finish_reason": None}],
    }
    body = (
        b": keep-alive\r\n\r\n"
        + b"data: "
        + json.dumps(chunk).encode()
        + b"\r\n\r\n"
        + b"data: [DONE]\r\n\r\n"
    )
    fake.script(Respond(200, body, "text/event-stream"), persistent=True)
    _, chunks = read_stream(http, *STREAMS["chat"])
    assert b"".join(c for _, c in chunks) == body
    stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    assert [c.choices[0].delta.content for c in stream] == ["crlf"]


@pytest.mark.parametrize("kind", ["chat", "messages"])
def test_flush_per_event(http: httpx.Client, fake: FakeUpstream, kind: str) -> None:
    delay = 0.1
    fake.script(SlowEvents(delay))
    path, body = STREAMS[kind]
    started = time.monotonic()
    _, chunks = read_stream(http, path, body)
    arrivals = event_arrivals(chunks)
    sent = fake.last().event_times
    assert len(arrivals) == len(upstream_events(kind))
    assert len(sent) >= len(arrivals) >= 8
    # The first event reaches the client long before the upstream sends the last one.
    assert arrivals[0] < sent[-1] - 3 * delay
    assert arrivals[0] - started < 1.0
    # And the events arrive spread out as they were sent, not in one burst at the end.
    early = sum(1 for at in arrivals if at < sent[-1])
    assert early >= len(sent) // 2


@pytest.mark.parametrize("kind", ["chat", "messages"])
def test_event_split_across_writes_arrives_whole(
    http: httpx.Client, fake: FakeUpstream, kind: str
) -> None:
    fake.script(SplitEvents(pause=0.05))
    path, body = STREAMS[kind]
    _, chunks = read_stream(http, path, body)
    received = b"".join(c for _, c in chunks)
    assert received == b"".join(upstream_events(kind))
    # Every chunk the client reads ends on an event boundary: half events are held back.
    for _, chunk in chunks:
        assert chunk.endswith(b"\n\n"), chunk


def test_split_events_parse_with_the_sdk(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(SplitEvents(pause=0.02))
    stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == TEXT


def test_multibyte_text_split_mid_character_survives(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    # Writes are cut at the byte midpoint of each event, often inside a UTF-8 sequence.
    words = ("été ", "日本語 ", "👋🏽 ", "Жж")
    fake.script(SplitEvents(pause=0.01, words=words))
    with claude.messages.stream(model=CLAUDE, max_tokens=50, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "".join(words)


# --------------------------------------------------------------------------- disconnects


def assert_upstream_dropped(fake: FakeUpstream, closed_at: float, total_events: int) -> None:
    """The fake saw its writes fail soon after the client left, long before the end."""
    assert fake.wait_for(lambda: fake.last().dropped_at is not None, timeout=5)
    record = fake.last()
    assert record.dropped_at is not None
    assert record.dropped_at - closed_at < 1.5
    assert not record.completed
    assert record.events_sent < total_events


def test_client_disconnect_drops_upstream(http: httpx.Client, fake: FakeUpstream) -> None:
    pieces = 100
    fake.script(SlowEvents(0.05, pieces=pieces))
    path, body = STREAMS["chat"]
    with http.stream("POST", path, json=body, headers=AUTH) as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if seen.count(b"\n\n") >= 3:
                break
    closed_at = time.monotonic()
    assert_upstream_dropped(fake, closed_at, pieces + 3)
    assert_healthy(http)


def test_anthropic_sdk_leaving_a_stream_drops_upstream(
    claude: anthropic.Anthropic, http: httpx.Client, fake: FakeUpstream
) -> None:
    pieces = 100
    fake.script(SlowEvents(0.05, pieces=pieces))
    with claude.messages.stream(model=CLAUDE, max_tokens=500, messages=MESSAGES) as stream:
        for index, _ in enumerate(stream):
            if index == 3:
                break
    closed_at = time.monotonic()
    assert_upstream_dropped(fake, closed_at, pieces + 6)
    assert_healthy(http)


async def test_async_sdk_closing_a_stream_drops_upstream(
    aoai: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    pieces = 100
    fake.script(SlowEvents(0.05, pieces=pieces))
    stream = await aoai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    count = 0
    async for _ in stream:
        count += 1
        if count == 3:
            break
    await stream.close()
    closed_at = time.monotonic()
    # wait_for polls with time.sleep; the fake and the gateway run on their own threads.
    assert_upstream_dropped(fake, closed_at, pieces + 3)


def test_client_leaving_before_the_first_byte_drops_upstream(
    gateway: GatewayServer, fake: FakeUpstream
) -> None:
    fake.script(Stall(30))
    path, body = STREAMS["chat"]
    with (
        httpx.Client(base_url=gateway.url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(path, json=body, headers=AUTH)
    closed_at = time.monotonic()
    assert fake.wait_for(lambda: fake.last().dropped_at is not None, timeout=5)
    dropped_at = fake.last().dropped_at
    assert dropped_at is not None and dropped_at - closed_at < 1.5


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_stream_dying_before_its_first_event_is_a_json_error(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    # Nothing reached the client yet, so it gets a plain error response, not a stream.
    kind = "messages" if dialect == "anthropic" else "chat"
    fake.script(CutMidStream(after_events=0))
    response = http.post(STREAMS[kind][0], json=STREAMS[kind][1], headers=AUTH)
    dialect_error(dialect, response, 502)


def test_stream_silent_before_its_first_event_is_a_json_504(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    fake.script(StallMidStream(after_events=0, seconds=30))
    response = http.post(STREAMS["chat"][0], json=STREAMS["chat"][1], headers=AUTH)
    assert dialect_error("openai", response, 504)["code"] == "upstream_timeout"


def test_cut_stream_ends_with_openai_error_event(
    http: httpx.Client, oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(CutMidStream(after_events=2))
    stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    got = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 2
    assert "closed" in caught.value.message

    fake.script(CutMidStream(after_events=2))
    _, chunks = read_stream(http, *STREAMS["chat"])
    events = sse_events(b"".join(c for _, c in chunks))
    assert events[:2] == upstream_events("chat")[:2]
    assert len(events) == 3
    error = error_event("openai", events[-1])
    assert error["code"] == "upstream_error"
    assert error["type"] == "server_error"
    assert_healthy(http)


def test_cut_stream_ends_with_anthropic_error_event(
    http: httpx.Client, claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.script(CutMidStream(after_events=2))
    got = []
    with pytest.raises(anthropic.APIError):
        for event in claude.messages.create(
            model=CLAUDE, max_tokens=50, messages=MESSAGES, stream=True
        ):
            got.append(event.type)
    assert got == ["message_start", "content_block_start"]

    fake.script(CutMidStream(after_events=2))
    _, chunks = read_stream(http, *STREAMS["messages"])
    events = sse_events(b"".join(c for _, c in chunks))
    assert len(events) == 3
    error = error_event("anthropic", events[-1])
    assert error["type"] == "api_error"
    assert_healthy(http)


def test_cut_responses_stream_raises_in_sdk(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(CutMidStream(after_events=3))
    stream = oai.responses.create(model=GPT, input="hi", stream=True)
    kinds = []
    with pytest.raises(openai.APIError):
        for event in stream:
            kinds.append(event.type)
    # response.failed (what Codex reads), then the error event the SDK raises on.
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.failed",
    ]


def test_stall_mid_stream_ends_with_timeout_event(
    http: httpx.Client, oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(StallMidStream(after_events=2, seconds=30))
    started = time.monotonic()
    stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    got = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            got.append(chunk)
    # stream_idle is 1 s in the test settings.
    assert 0.8 < time.monotonic() - started < 5
    assert len(got) == 2
    assert caught.value.body["code"] == "upstream_timeout"  # type: ignore[index]
    assert_healthy(http)


def test_stall_mid_stream_anthropic(
    http: httpx.Client, claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.script(StallMidStream(after_events=3, seconds=30))
    kinds = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(model=CLAUDE, max_tokens=50, messages=MESSAGES) as stream,
    ):
        for event in stream:
            kinds.append(event.type)
    # The SDK raises with the error event's body: an Anthropic error of type timeout_error.
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]
    assert_no_leak(str(caught.value.body))
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert_healthy(http)


@pytest.mark.parametrize("kind", ["chat", "completions", "responses", "messages"])
def test_stream_ending_without_terminal_event_is_an_error(
    http: httpx.Client, fake: FakeUpstream, kind: str
) -> None:
    # A clean end of the body before [DONE] / response.completed / message_stop is a
    # truncated answer, not a complete one.
    fake.script(Truncate(after_events=3))
    _, chunks = read_stream(http, *STREAMS[kind])
    events = sse_events(b"".join(c for _, c in chunks))
    assert events[:3] == upstream_events(kind)[:3]
    if kind == "responses":  # response.failed first: what Responses clients read
        assert events[3].startswith(b"event: response.failed")
        events = events[:3] + events[4:]
    assert len(events) == 4
    error = error_event("anthropic" if kind == "messages" else "openai", events[-1])
    assert "final event" in error["message"] or "ended" in error["message"]
    assert_healthy(http)


def test_usage_is_requested_upstream_but_not_shown_to_the_client(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    # Metering asks for usage on every OpenAI stream; a client that did not ask for it
    # still gets the stream it asked for (no usage chunk, no "usage": null fields).
    _, chunks = read_stream(http, *STREAMS["chat"])
    received = b"".join(c for _, c in chunks)
    assert fake.last().body["stream_options"] == {"include_usage": True}
    assert b'"usage"' in bytes(fake.last().sent)
    assert b'"usage"' not in received


def _anthropic_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_provider_key_in_upstream_stream_error_is_redacted(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    leak = f"upstream rejected key {ANTHROPIC_UPSTREAM_KEY} / {OPENAI_UPSTREAM_KEY}"
    if dialect == "anthropic":
        first = upstream_events("messages")[0]
        error = _anthropic_event(
            "error", {"type": "error", "error": {"type": "api_error", "message": leak}}
        )
        kind = "messages"
    else:
        first = upstream_events("chat")[0]
        error = (
            b"data: " + json.dumps({"error": {"message": leak, "type": "server_error"}}).encode()
        )
        error += b"\n\n"
        kind = "chat"
    fake.script(Respond(200, first + error, "text/event-stream"))
    _, chunks = read_stream(http, *STREAMS[kind])
    assert_no_leak(b"".join(c for _, c in chunks))


def test_stream_whose_first_event_is_overloaded_is_a_503(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    overloaded = _anthropic_event(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    fake.script(Respond(200, overloaded, "text/event-stream"))
    response = http.post(STREAMS["messages"][0], json=STREAMS["messages"][1], headers=AUTH)
    dialect_error("anthropic", response, 503)
