"""Anthropic Messages answers replayed the other way: the official SDK rebuilds the same
message from the replay as from the original."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from cache_support import (
    datas,
    dumps,
    load_events,
    load_json,
    message_streamed,
    message_whole,
    translated_body,
    translated_stream,
)
from pydantic import TypeAdapter

from tollway.cache.entry import Entry, from_body, from_stream
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage
from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat

USAGE = Usage(input_tokens=10, output_tokens=5)
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
REQUEST: dict[str, Any] = {
    "model": "gpt-x",
    "max_tokens": 256,
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
              {"name": "get_time", "input_schema": {"type": "object"}}],
}  # fmt: skip
NATIVE = [
    "anthropic_message_text.json",
    "anthropic_message_thinking.json",
    "anthropic_message_tool_use.json",
    "anthropic_message_search.json",
]


def bodies() -> list[dict[str, Any]]:
    """Whole messages: Anthropic's own, and what a Messages client of an OpenAI model gets."""
    translated = [
        translated_body(AnthropicToOpenAIChat, REQUEST, load_json(name))
        for name in ("openai_chat_completion_tool_calls.json", "openai_chat_completion_text.json")
    ]
    return [load_json(name) for name in NATIVE] + translated


def streams() -> list[list[bytes]]:
    """Message streams as clients received them: Anthropic's, and translated."""
    native = [
        load_events(name)
        for name in (
            "anthropic_stream_text.sse",
            "anthropic_stream_thinking.sse",
            "anthropic_stream_tool_use.sse",
        )
    ]
    translated = [
        translated_stream(AnthropicToOpenAIChat, REQUEST, load_events(name))
        for name in ("openai_stream_tool_calls.sse", "openai_stream_interleaved.sse")
    ]
    return native + translated


def entry_of(body: dict[str, Any]) -> Entry:
    entry = from_body(Endpoint.MESSAGES, dumps(body), USAGE)
    assert entry is not None
    return entry


@pytest.mark.parametrize("body", bodies(), ids=[*NATIVE, "translated_tools", "translated_text"])
def test_whole_message_replays_as_a_faithful_stream(body: dict[str, Any]) -> None:
    events = entry_of(body).stream({})
    for event, data in zip(events, datas(events), strict=True):
        assert event.startswith(b"event: " + data["type"].encode() + b"\n")
        EVENTS.validate_python(data)  # strictly the API's event shapes
    kinds = [data["type"] for data in datas(events)]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert message_streamed(events) == message_whole(dumps(body))


def test_every_block_kind_streams_as_anthropic_does() -> None:
    body = load_json("anthropic_message_search.json")
    data = datas(entry_of(body).stream({}))
    starts = [d["content_block"] for d in data if d["type"] == "content_block_start"]
    assert [s["type"] for s in starts] == [b["type"] for b in body["content"]]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[2]["input"] == {} and starts[6]["input"] == {}  # tool inputs arrive as JSON
    assert starts[3] == body["content"][3]  # a result block comes whole
    deltas = [d["delta"]["type"] for d in data if d["type"] == "content_block_delta"]
    assert deltas == [
        "thinking_delta", "signature_delta", "input_json_delta", "text_delta",
        "citations_delta", "text_delta", "input_json_delta",
    ]  # fmt: skip
    start = data[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"] == body["usage"]
    assert data[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert data[-2]["usage"]["output_tokens"] == 187


@pytest.mark.parametrize("events", streams(), ids=["text", "thinking", "tools", "t_tools", "t_mix"])
def test_recorded_stream_replays_as_a_faithful_whole_body(events: list[bytes]) -> None:
    entry = from_stream(Endpoint.MESSAGES, events, USAGE)
    assert entry is not None
    whole = entry.whole({})
    assert message_whole(whole) == message_streamed(events)
    assert entry.stream({}) == events  # streamed again exactly as recorded


def test_native_stream_whole_body_is_strictly_a_message() -> None:
    for name in ("anthropic_stream_thinking.sse", "anthropic_stream_tool_use.sse"):
        entry = from_stream(Endpoint.MESSAGES, load_events(name), USAGE)
        assert entry is not None
        body = orjson.loads(entry.whole({}))
        Message.model_validate(body)
        # And back: the stream made from it rebuilds the same message again.
        assert message_streamed(entry_of(body).stream({})) == message_whole(entry.whole({}))


def test_message_delta_usage_overrides_message_start() -> None:
    events = load_events("anthropic_stream_text.sse")
    entry = from_stream(Endpoint.MESSAGES, events, USAGE)
    assert entry is not None
    usage = orjson.loads(entry.whole({}))["usage"]
    start = datas(events)[0]["message"]["usage"]
    final = [d for d in datas(events) if d["type"] == "message_delta"][-1]["usage"]
    assert usage == {**start, **{k: v for k, v in final.items() if v is not None}}
    assert usage["output_tokens"] == final["output_tokens"] != start["output_tokens"]


def test_error_events_and_cut_streams_are_not_entries() -> None:
    events = load_events("anthropic_stream_text.sse")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    assert from_stream(Endpoint.MESSAGES, [*events[:4], error], USAGE) is None
    assert from_stream(Endpoint.MESSAGES, [*events, error], USAGE) is None
    assert from_stream(Endpoint.MESSAGES, events[1:], USAGE) is None  # no message_start
    future = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"future_delta","x":1}}\n\n'
    )
    unknown = [*events[:3], future, *events[3:]]
    assert from_stream(Endpoint.MESSAGES, unknown, USAGE) is None
