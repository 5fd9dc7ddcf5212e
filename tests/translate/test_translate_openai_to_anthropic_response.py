"""Anthropic messages and streams become the chat completions an OpenAI client expects."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from translate_support import (
    CHAT_REQUEST,
    accumulate_chat,
    chat_chunks,
    load_events,
    load_json,
    replay_chat_stream,
    run_stream,
)

from tollway.translate.openai_to_anthropic import OpenAIChatToAnthropic


def translator(**body: Any) -> OpenAIChatToAnthropic:
    return OpenAIChatToAnthropic({**CHAT_REQUEST, **body})


def test_a_text_message() -> None:
    before = int(time.time())
    completion = translator().response(load_json("anthropic_message_text.json"))
    parsed = ChatCompletion.model_validate(completion)
    assert parsed.id == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    assert parsed.object == "chat.completion"
    assert before <= parsed.created <= int(time.time())
    assert parsed.model == "claude-sonnet-4-5-20250929"
    choice = parsed.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "It is 21:40 in Tokyo"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"  # stop_sequence
    assert completion["usage"] == {
        "prompt_tokens": 24 + 1800,
        "completion_tokens": 9,
        "total_tokens": 24 + 1800 + 9,
        "prompt_tokens_details": {"cached_tokens": 1800},
    }


def test_a_message_with_parallel_tool_calls() -> None:
    completion = translator().response(load_json("anthropic_message_tool_use.json"))
    message = ChatCompletion.model_validate(completion).choices[0].message
    assert message.content == "I'll check both cities."  # thinking is dropped
    assert message.tool_calls is not None
    assert [(call.id, call.function.name) for call in message.tool_calls] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather"),
        ("toolu_01B7m3XgH2cZpQvLs5KdNw4e", "get_weather"),
    ]
    assert [json.loads(call.function.arguments) for call in message.tool_calls] == [
        {"city": "Paris", "unit": "celsius"},
        {"city": "Tokyo", "unit": "celsius"},
    ]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    # Prompt tokens count uncached input, cache reads and cache writes.
    assert completion["usage"]["prompt_tokens"] == 112 + 300 + 1500
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 300}
    assert completion["usage"]["total_tokens"] == 112 + 300 + 1500 + 141


def test_only_tool_calls_means_null_content() -> None:
    message = load_json("anthropic_message_tool_use.json")
    message["content"] = [block for block in message["content"] if block["type"] == "tool_use"]
    assert translator().response(message)["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, finish_reason: str) -> None:
    message = {**load_json("anthropic_message_text.json"), "stop_reason": stop_reason}
    assert translator().response(message)["choices"][0]["finish_reason"] == finish_reason


# Streams


def test_a_text_stream_without_usage() -> None:
    events = run_stream(translator(stream=True).stream(), load_events("anthropic_stream_text.sse"))
    chunks = chat_chunks(events)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.id for chunk in chunks} == {"chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"}
    assert {chunk.model for chunk in chunks} == {"claude-sonnet-4-5-20250929"}
    assert all(chunk.choices for chunk in chunks), "no usage chunk unless asked"
    assert all(b'"usage"' not in event for event in events)
    result = accumulate_chat(chunks)
    assert result["text"] == "It is 21:40 in Tokyo right now."
    assert result["finish_reason"] == "stop"
    assert chunks[-1].choices[0].delta.content is None


def test_a_text_stream_with_usage_when_asked() -> None:
    stream = translator(stream=True, stream_options={"include_usage": True}).stream()
    chunks = chat_chunks(run_stream(stream, load_events("anthropic_stream_text.sse")))
    *content, last = chunks
    assert last.choices == []
    assert all(chunk.usage is None for chunk in content)
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        25,
        12,
        37,
    )


def test_a_tool_use_stream() -> None:
    stream = translator(stream=True, stream_options={"include_usage": True}).stream()
    result = accumulate_chat(
        chat_chunks(run_stream(stream, load_events("anthropic_stream_tool_use.sse")))
    )
    assert result["text"] == "I'll check both cities."
    assert [(call["id"], call["name"]) for call in result["tool_calls"]] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather"),
        ("toolu_01B7m3XgH2cZpQvLs5KdNw4e", "get_weather"),
    ]
    assert [json.loads(call["arguments"]) for call in result["tool_calls"]] == [
        {"city": "Paris", "unit": "celsius"},
        {"city": "Tokyo", "unit": "celsius"},
    ]
    assert result["finish_reason"] == "tool_calls"
    usage = result["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (112 + 1800, 89)
    assert usage.prompt_tokens_details.cached_tokens == 1800


def test_the_openai_sdk_reads_the_translated_stream() -> None:
    stream = translator(stream=True, stream_options={"include_usage": True}).stream()
    events = run_stream(stream, load_events("anthropic_stream_tool_use.sse"))
    chunks, final = replay_chat_stream(events)
    assert len(chunks) == len(events) - 1  # every chunk but [DONE]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check both cities."
    assert [json.loads(call.function.arguments)["city"] for call in choice.message.tool_calls] == [
        "Paris",
        "Tokyo",
    ]
    assert [call.id for call in choice.message.tool_calls] == [
        "toolu_01A09q90qw90lq917835lq9",
        "toolu_01B7m3XgH2cZpQvLs5KdNw4e",
    ]
    assert final.usage.completion_tokens == 89


def test_an_upstream_error_mid_stream_becomes_an_openai_error_event() -> None:
    stream = translator(stream=True).stream()
    events = run_stream(stream, load_events("anthropic_stream_error.sse"))
    error = json.loads(events[-1].removeprefix(b"data: "))
    assert error["error"]["type"] == "server_error"
    assert error["error"]["code"] == "upstream_unavailable"
    assert "Overloaded" in error["error"]["message"]
    assert b"[DONE]" not in b"".join(events)
    assert stream.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n') == []
    assert stream.finish() == []
    with pytest.raises(openai.APIError, match="Overloaded"):
        replay_chat_stream(events)


def test_a_stream_cut_before_message_stop_is_closed_by_finish() -> None:
    events = load_events("anthropic_stream_text.sse")[:-1]  # no message_stop
    stream = translator(stream=True, stream_options={"include_usage": True}).stream()
    chunks = chat_chunks(run_stream(stream, events))
    result = accumulate_chat(chunks)
    assert result["text"] == "It is 21:40 in Tokyo right now."
    assert result["finish_reason"] == "stop"
    assert result["usage"].completion_tokens == 12


def test_finish_owes_nothing_when_nothing_started_or_all_was_sent() -> None:
    stream = translator(stream=True).stream()
    assert stream.feed(b'event: ping\ndata: {"type": "ping"}\n\n') == []
    assert stream.feed(b": keep-alive comment\n\n") == []
    assert stream.finish() == []
    done = translator(stream=True).stream()
    run_stream(done, load_events("anthropic_stream_text.sse"), finish=False)
    assert done.finish() == []


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("overloaded_error", "upstream_unavailable"),
        ("rate_limit_error", "rate_limit_exceeded"),
        ("api_error", "upstream_error"),
        ("something_new", "upstream_error"),
    ],
)
def test_upstream_error_kinds(error_type: str, code: str) -> None:
    event = json.dumps({"type": "error", "error": {"type": error_type, "message": "boom"}})
    stream = translator(stream=True).stream()
    [translated] = stream.feed(f"event: error\ndata: {event}\n\n".encode())
    assert json.loads(translated.removeprefix(b"data: "))["error"]["code"] == code
