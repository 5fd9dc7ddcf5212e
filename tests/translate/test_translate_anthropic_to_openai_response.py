"""Chat completions and chunk streams become the messages an Anthropic client expects."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic.types import Message
from translate_support import (
    MESSAGES_REQUEST,
    anthropic_events,
    load_events,
    load_json,
    replay_messages_stream,
    run_stream,
)

from tollway.errors import UpstreamError
from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat


def translator(**body: Any) -> AnthropicToOpenAIChat:
    return AnthropicToOpenAIChat({**MESSAGES_REQUEST, **body})


def test_a_text_completion() -> None:
    body = translator().response(load_json("openai_chat_completion_text.json"))
    message = Message.model_validate(body)
    assert message.id == "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert message.model == "gpt-4.1-2025-04-14"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "It is 21:40 in Tokyo."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert body["usage"] == {
        "input_tokens": 1824 - 1792,
        "output_tokens": 10,
        "cache_read_input_tokens": 1792,
        "cache_creation_input_tokens": 0,
    }


def test_a_completion_with_parallel_tool_calls() -> None:
    message = Message.model_validate(
        translator().response(load_json("openai_chat_completion_tool_calls.json"))
    )
    assert [(block.type, block.id, block.input) for block in message.content] == [  # type: ignore[union-attr]
        ("tool_use", "call_Vx8HnWqa2yAYXbJf4hT1dLmE", {"city": "Paris", "unit": "celsius"}),
        ("tool_use", "call_R2kq9ZpLw7sNfU3cVb6eTyQo", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (182, 54)


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish_reason: str | None, stop_reason: str) -> None:
    completion = load_json("openai_chat_completion_text.json")
    completion["choices"][0]["finish_reason"] = finish_reason
    assert translator().response(completion)["stop_reason"] == stop_reason


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    completion = load_json("openai_chat_completion_text.json")
    completion["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    body = translator().response(completion)
    assert body["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert body["stop_reason"] == "refusal"


def test_upstream_garbage_is_an_upstream_error() -> None:
    completion = load_json("openai_chat_completion_tool_calls.json")
    completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"city": "Par'
    with pytest.raises(UpstreamError):
        translator().response(completion)
    with pytest.raises(UpstreamError):
        translator().response({**completion, "choices": []})


# Streams


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """A minimal chat chunk event, as OpenAI-compatible servers send."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    data = {"id": "chatcmpl-1", "model": "m", "choices": [choice]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def block_spans(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, int]]:
    """(event, block index) for block events; asserts blocks open and close one at a time."""
    spans = [(name, data["index"]) for name, data in events if name.startswith("content_block")]
    open_index = None
    for name, index in spans:
        if name == "content_block_start":
            assert open_index is None, "a block opened while another was open"
            open_index = index
        else:
            assert index == open_index
            if name == "content_block_stop":
                open_index = None
    assert open_index is None
    return spans


def test_a_text_stream() -> None:
    events = run_stream(translator(stream=True).stream(), load_events("openai_stream_text.sse"))
    parsed = anthropic_events(events)
    assert [name for name, _ in parsed] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = parsed[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert parsed[-2][1]["usage"] == {
        "input_tokens": 1824 - 1792,
        "output_tokens": 10,
        "cache_read_input_tokens": 1792,
        "cache_creation_input_tokens": 0,
    }
    raw, final = replay_messages_stream(events)
    assert [event.type for event in raw] == [name for name, _ in parsed]
    assert final.content[0].text == "It is 21:40 in Tokyo."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (32, 10)
    assert final.usage.cache_read_input_tokens == 1792


def test_text_then_parallel_tool_calls() -> None:
    events = run_stream(
        translator(stream=True).stream(), load_events("openai_stream_tool_calls.sse")
    )
    spans = block_spans(anthropic_events(events))
    assert [index for name, index in spans if name == "content_block_start"] == [0, 1, 2]
    _, final = replay_messages_stream(events)
    assert final.content[0].type == "text"
    assert final.content[0].text == "I'll check both cities."
    assert [(block.type, block.id, block.name, block.input) for block in final.content[1:]] == [
        (
            "tool_use",
            "call_Vx8HnWqa2yAYXbJf4hT1dLmE",
            "get_weather",
            {"city": "Paris", "unit": "celsius"},
        ),
        (
            "tool_use",
            "call_R2kq9ZpLw7sNfU3cVb6eTyQo",
            "get_weather",
            {"city": "Tokyo", "unit": "celsius"},
        ),
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (182 - 128, 128)
    assert final.usage.output_tokens == 54


def test_interleaved_tool_calls_become_sequential_blocks() -> None:
    events = run_stream(
        translator(stream=True).stream(), load_events("openai_stream_interleaved.sse")
    )
    parsed = anthropic_events(events)
    block_spans(parsed)
    assert parsed[0][1]["message"]["model"] == "qwen3-32b"  # not the empty preamble's
    _, final = replay_messages_stream(events)
    assert [(block.id, block.name, block.input) for block in final.content] == [
        ("call_a1", "get_weather", {"city": "Paris"}),
        ("call_b2", "get_time", {"city": "Tokyo"}),
    ]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (96, 31)


def test_a_held_call_opens_when_the_open_one_completes() -> None:
    stream = translator(stream=True).stream()

    def call(index: int, arguments: str, **extra: str) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, "function": {"arguments": arguments, **extra}}]}

    events = run_stream(
        stream,
        [
            chunk(call(0, '{"a":', name="f")),
            chunk(call(1, '{"b": 2}', name="g")),
            chunk({"content": "Also text."}),
            chunk(call(0, " 1}")),  # completes call 0: call 1 and the text follow at once
            chunk({}, "tool_calls"),
        ],
    )
    parsed = anthropic_events(events)
    spans = block_spans(parsed)
    assert spans.index(("content_block_start", 1)) < [name for name, _ in parsed].index(
        "message_delta"
    )
    _, final = replay_messages_stream(events)
    assert [block.type for block in final.content] == ["tool_use", "tool_use", "text"]
    assert [block.id for block in final.content[:2]] == ["call_0", "call_1"]  # no ids sent
    assert (final.content[0].input, final.content[1].input) == ({"a": 1}, {"b": 2})
    assert final.content[2].text == "Also text."
    assert final.usage.output_tokens == 0  # no usage came


def test_a_stream_without_done_is_closed_by_finish() -> None:
    events = load_events("openai_stream_tool_calls.sse")[:-1]
    stream = translator(stream=True).stream()
    translated = run_stream(stream, events, finish=False)
    assert b"message_stop" not in b"".join(translated)
    owed = stream.finish()
    assert [name for name, _ in anthropic_events(owed)] == ["message_delta", "message_stop"]
    _, final = replay_messages_stream(translated + owed)
    assert final.stop_reason == "tool_use"
    assert len(final.content) == 3
    assert stream.finish() == []


def test_a_stream_cut_before_the_finish_chunk_closes_its_blocks() -> None:
    events = load_events("openai_stream_tool_calls.sse")[:13]  # no second call, no finish
    translated = run_stream(translator(stream=True).stream(), events)
    block_spans(anthropic_events(translated))
    _, final = replay_messages_stream(translated)
    assert final.stop_reason == "end_turn"
    assert final.content[1].input == {"city": "Paris", "unit": "celsius"}


def test_an_upstream_error_mid_stream_becomes_an_anthropic_error_event() -> None:
    events = load_events("openai_stream_text.sse")[:3]
    events.append(
        b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    stream = translator(stream=True).stream()
    translated = run_stream(stream, events)
    name, data = anthropic_events(translated)[-1]
    assert name == "error"
    assert data["error"]["type"] == "api_error"
    assert "The server had an error" in data["error"]["message"]
    assert stream.feed(b"data: [DONE]\n\n") == []
    with pytest.raises(anthropic.APIStatusError, match="The server had an error"):
        replay_messages_stream(translated)


def test_nothing_is_owed_for_an_empty_stream() -> None:
    stream = translator(stream=True).stream()
    assert stream.feed(b'data: {"id":"","choices":[],"prompt_filter_results":[]}\n\n') == []
    assert stream.feed(b"data: [DONE]\n\n") == []
    assert stream.finish() == []


def test_a_streamed_refusal() -> None:
    chunks = [
        chunk({"role": "assistant", "refusal": "I can't help with that."}),
        chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]
    _, final = replay_messages_stream(run_stream(translator(stream=True).stream(), chunks))
    assert final.content[0].text == "I can't help with that."
    assert final.stop_reason == "refusal"
