"""Entries: only whole answers become one; their bytes form (codec); recording what a
client was sent and sending an entry again, over ASGI."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import pytest
from cache_support import dumps, load_events, load_json, split

from tollway.asgi import Message
from tollway.cache.codec import MAGIC, decode, encode
from tollway.cache.entry import (
    ENTRY_OVERHEAD,
    EVENT_OVERHEAD,
    Entry,
    Tokens,
    from_body,
    from_stream,
)
from tollway.cache.wire import AnswerRecorder, send_entry
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.render import render_stream_failure
from tollway.errors import UpstreamError
from tollway.metering.usage import Usage
from tollway.relay import send_whole

USAGE = Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64, reasoning_tokens=5)
FAILURE = UpstreamError("The provider's stream ended before its final event.")


class Client:
    """The ASGI server's side of ``send``: what the client would receive."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


# --------------------------------------------------------------------------- from_body


@pytest.mark.parametrize(
    ("endpoint", "fixture"),
    [
        (Endpoint.CHAT_COMPLETIONS, "openai_chat_completion_tool_calls.json"),
        (Endpoint.COMPLETIONS, "completion_text.json"),
        (Endpoint.RESPONSES, "responses_agent.json"),
        (Endpoint.RESPONSES, "responses_refusal_incomplete.json"),
        (Endpoint.MESSAGES, "anthropic_message_search.json"),
        (Endpoint.EMBEDDINGS, "embeddings.json"),
    ],
)
def test_whole_answers_become_entries(endpoint: Endpoint, fixture: str) -> None:
    body = dumps(load_json(fixture))
    entry = from_body(endpoint, body, USAGE, "application/json; charset=utf-8", now=12.5)
    assert entry is not None
    assert entry.body == body and entry.events is None
    assert entry.created_at == 12.5 and entry.status == 200
    assert entry.tokens == Tokens(100, 20, 64, 0, 0, 5, False)
    assert entry.tokens.usage() == USAGE
    assert entry.size == ENTRY_OVERHEAD + len(body)


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "content_type"),
    [
        (Endpoint.CHAT_COMPLETIONS, {"choices": [{"index": 0}]}, 500, "application/json"),
        (Endpoint.CHAT_COMPLETIONS, {"choices": [{"index": 0}]}, 201, "application/json"),
        (Endpoint.CHAT_COMPLETIONS, {"choices": [{"index": 0}]}, 200, "text/plain"),
        (Endpoint.CHAT_COMPLETIONS, {"error": {"message": "overloaded"}}, 200, "application/json"),
        (Endpoint.CHAT_COMPLETIONS, {"choices": []}, 200, "application/json"),
        (Endpoint.CHAT_COMPLETIONS, {"choices": ["x"]}, 200, "application/json"),
        (Endpoint.COMPLETIONS, {"object": "text_completion"}, 200, "application/json"),
        (Endpoint.RESPONSES, {"status": "failed", "error": {"code": "x"}}, 200, "application/json"),
        (Endpoint.RESPONSES, {"status": "queued"}, 200, "application/json"),
        (Endpoint.RESPONSES, {"status": "in_progress"}, 200, "application/json"),
        (Endpoint.MESSAGES, {"type": "error", "error": {"type": "x"}}, 200, "application/json"),
        (Endpoint.MESSAGES, {"type": "message", "content": "x"}, 200, "application/json"),
        (Endpoint.COUNT_TOKENS, {"input_tokens": 5}, 200, "application/json"),
        (Endpoint.EMBEDDINGS, [1, 2], 200, "application/json"),
    ],
)
def test_errors_and_non_answers_are_not_entries(
    endpoint: Endpoint, body: Any, status: int, content_type: str
) -> None:
    assert from_body(endpoint, orjson.dumps(body), USAGE, content_type, status) is None


def test_a_body_that_is_not_json_is_not_an_entry() -> None:
    assert from_body(Endpoint.CHAT_COMPLETIONS, b"<html>", USAGE) is None
    assert from_body(Endpoint.CHAT_COMPLETIONS, b"[1]", USAGE) is None


def test_unknown_usage_is_flagged_as_estimated() -> None:
    entry = from_body(Endpoint.EMBEDDINGS, dumps(load_json("embeddings.json")), None)
    assert entry is not None and entry.tokens == Tokens(estimated=True)
    assert entry.tokens.usage().estimated


# ------------------------------------------------------------------------- from_stream


STREAMS = [
    (Endpoint.CHAT_COMPLETIONS, "openai_stream_tool_calls.sse"),
    (Endpoint.RESPONSES, "responses_stream_tool_call.sse"),
    (Endpoint.MESSAGES, "anthropic_stream_tool_use.sse"),
]


@pytest.mark.parametrize(("endpoint", "fixture"), STREAMS)
def test_complete_streams_become_entries(endpoint: Endpoint, fixture: str) -> None:
    events = load_events(fixture)
    entry = from_stream(endpoint, events, USAGE, now=3.0)
    assert entry is not None and entry.events == tuple(events) and entry.body is None
    assert entry.size == ENTRY_OVERHEAD + sum(len(e) + EVENT_OVERHEAD for e in events)


@pytest.mark.parametrize(("endpoint", "fixture"), STREAMS)
def test_cut_or_failed_streams_are_not_entries(endpoint: Endpoint, fixture: str) -> None:
    events = load_events(fixture)
    assert from_stream(endpoint, events[:-1], USAGE) is None  # never ended
    assert from_stream(endpoint, events[: len(events) // 2], USAGE) is None
    # How the relay ends a stream that failed after its first event.
    failed = split(render_stream_failure(endpoint, FAILURE))
    assert from_stream(endpoint, events[: len(events) // 2] + failed, USAGE) is None
    assert from_stream(endpoint, [], USAGE) is None
    assert from_stream(endpoint, events, USAGE, status=500) is None


def test_streams_with_an_unfinished_choice_or_events_after_the_end_are_not_entries() -> None:
    events = load_events("openai_stream_text.sse")
    unfinished = [e for e in events if b'"finish_reason":"' not in e]
    assert from_stream(Endpoint.CHAT_COMPLETIONS, unfinished, USAGE) is None
    assert from_stream(Endpoint.CHAT_COMPLETIONS, [*events, events[1]], USAGE) is None
    assert from_stream(Endpoint.EMBEDDINGS, events, USAGE) is None
    broken = load_events("anthropic_stream_tool_use.sse")
    broken = [e.replace(b'"partial_json":"{', b'"partial_json":"{{') for e in broken]
    assert from_stream(Endpoint.MESSAGES, broken, USAGE) is None  # tool input not JSON


# ------------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    "entry",
    [
        Entry(Endpoint.MESSAGES, Tokens(1, 2, 3, 4, 1, 0, True), 1.5, body=b'{"a":1}'),
        Entry(
            Endpoint.RESPONSES,
            Tokens(),
            2.0,
            events=tuple(load_events("responses_stream_tool_call.sse")),
        ),
        Entry(Endpoint.CHAT_COMPLETIONS, Tokens(9), 3.0, events=(b"data: [DONE]\n\n",)),
        Entry(Endpoint.EMBEDDINGS, Tokens(8), 4.0, body=b"", content_type="application/json; x=1"),
    ],
)
def test_codec_round_trip(entry: Entry) -> None:
    data = encode(entry)
    assert data.startswith(MAGIC)
    assert decode(data) == entry
    assert decode(data, max_bytes=entry.size) == entry


def test_codec_refuses_what_it_did_not_write() -> None:
    good = encode(Entry(Endpoint.MESSAGES, Tokens(1), 1.0, body=b'{"a":1}'))
    for bad in (
        b"",
        b"hello",
        b"twc2" + good[4:],
        good[:4] + b"x" + good[5:],
        good[:-1],
        good + b"!",
        MAGIC + b"z" + b"not zlib",
        MAGIC
        + b"r"
        + b'{"e":"nope","s":200,"t":"","u":[0,0,0,0,0,0,false],"c":1,"b":0,"v":null}\n',
        MAGIC + b"r" + b'{"e":"messages","s":200,"t":"","u":[],"c":1,"b":0,"v":null}\n',
        MAGIC
        + b"r"
        + b'{"e":"messages","s":200,"t":"","u":[0,0,0,0,0,0,false],"c":1,"b":-1,"v":null}\n',
        MAGIC
        + b"r"
        + b'{"e":"messages","s":200,"t":"","u":[0,0,0,0,0,0,false],"c":1,"b":null,"v":null}\n',
    ):
        assert decode(bad) is None, bad


def test_codec_bounds_what_it_inflates() -> None:
    header = b'{"e":"messages","s":200,"t":"","u":[0,0,0,0,0,0,false],"c":1,"b":50000000,"v":null}'
    bomb = MAGIC + b"z" + zlib.compress(header + b"\n" + b"0" * 50_000_000, 9)
    assert len(bomb) < 100_000
    assert decode(bomb, max_bytes=1024 * 1024) is None


def test_codec_compresses_streams() -> None:
    entry = Entry(
        Endpoint.MESSAGES, Tokens(), 1.0, events=tuple(load_events("anthropic_stream_thinking.sse"))
    )
    raw = sum(len(e) for e in entry.events or ())
    assert len(encode(entry)) < raw * 0.6


# ------------------------------------------------------------------------------- wire


async def test_recorder_keeps_a_whole_answer_as_sent() -> None:
    client = Client()
    recorder = AnswerRecorder(client, max_bytes=1 << 20)
    body = dumps(load_json("openai_chat_completion_text.json"))
    await send_whole(recorder, 200, body, "application/json", [(b"x-request-id", b"req_1")])
    assert client.body == body  # passed on untouched
    entry = recorder.entry(Endpoint.CHAT_COMPLETIONS, USAGE)
    assert entry is not None and entry.body == body and entry.content_type == "application/json"


async def test_recorder_keeps_a_stream_however_it_was_cut_into_messages() -> None:
    client = Client()
    recorder = AnswerRecorder(client, max_bytes=1 << 20)
    raw = b"".join(load_events("anthropic_stream_thinking.sse"))
    await recorder({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8")]})  # fmt: skip
    for start in range(0, len(raw), 100):
        await recorder({"type": "http.response.body", "body": raw[start : start + 100],
                        "more_body": True})  # fmt: skip
    assert recorder.entry(Endpoint.MESSAGES, USAGE) is None  # not ended yet
    await recorder({"type": "http.response.body", "body": b""})
    entry = recorder.entry(Endpoint.MESSAGES, USAGE)
    assert entry is not None and entry.events == tuple(load_events("anthropic_stream_thinking.sse"))
    assert client.body == raw


@pytest.mark.parametrize(("endpoint", "fixture"), STREAMS)
async def test_recorder_refuses_failed_streams(endpoint: Endpoint, fixture: str) -> None:
    events = load_events(fixture)
    recorder = AnswerRecorder(Client(), max_bytes=1 << 20)
    await recorder({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream")]})  # fmt: skip
    for event in events[:3]:
        await recorder({"type": "http.response.body", "body": event, "more_body": True})
    await recorder({"type": "http.response.body", "body": render_stream_failure(endpoint, FAILURE),
                    "more_body": True})  # fmt: skip
    await recorder({"type": "http.response.body", "body": b""})
    assert recorder.entry(endpoint, USAGE) is None


async def test_recorder_refuses_errors_and_answers_too_large() -> None:
    body = dumps(load_json("openai_chat_completion_text.json"))
    error = AnswerRecorder(Client(), max_bytes=1 << 20)
    await send_whole(error, 429, b'{"error":{"message":"slow down"}}', "application/json", [])
    assert error.entry(Endpoint.CHAT_COMPLETIONS, USAGE) is None
    client = Client()
    small = AnswerRecorder(client, max_bytes=len(body) - 1)
    await send_whole(small, 200, body, "application/json", [])
    assert small.overflow and small.entry(Endpoint.CHAT_COMPLETIONS, USAGE) is None
    assert client.body == body  # the client still got all of it


async def test_send_entry_whole_and_streamed() -> None:
    body = dumps(load_json("anthropic_message_search.json"))
    entry = from_body(Endpoint.MESSAGES, body, USAGE)
    assert entry is not None
    headers = [(b"x-request-id", b"req_2")]
    whole = Client()
    await send_entry(whole, entry, False, {}, headers)
    assert whole.status == 200 and whole.body == body
    assert whole.headers[b"content-type"] == b"application/json"
    assert whole.headers[b"content-length"] == str(len(body)).encode()
    assert whole.headers[b"x-request-id"] == b"req_2"
    streamed = Client()
    await send_entry(streamed, entry, True, {}, headers)
    assert streamed.headers[b"content-type"].startswith(b"text/event-stream")
    assert streamed.headers[b"x-request-id"] == b"req_2"
    assert streamed.messages[-1] == {"type": "http.response.body", "body": b""}
    assert all(m["more_body"] for m in streamed.messages[1:-1])
    assert split(streamed.body) == entry.stream({})
    # Embeddings have no stream form: a stream flag gets the whole body.
    vectors = from_body(Endpoint.EMBEDDINGS, dumps(load_json("embeddings.json")), USAGE)
    assert vectors is not None
    client = Client()
    await send_entry(client, vectors, True, {}, [])
    assert client.body == vectors.body
    with pytest.raises(ValueError, match="no stream form"):
        vectors.stream({})


async def test_an_entry_that_cannot_be_replayed_raises_before_sending() -> None:
    broken = Entry(Endpoint.RESPONSES, Tokens(), 1.0, body=b"[]")
    client = Client()
    with pytest.raises(ValueError):
        await send_entry(client, broken, True, {}, [])
    with pytest.raises(ValueError):
        await send_entry(client, broken, False, {}, [])
    garbled = Entry(Endpoint.MESSAGES, Tokens(), 1.0, events=(b"data: {}\n\n",))
    with pytest.raises(ValueError):
        garbled.whole({})
    assert client.messages == []
