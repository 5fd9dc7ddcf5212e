"""Thinking across the pairings: ``reasoning_effort`` -> ``thinking``; thinking blocks ->
``reasoning_content`` and ``thinking_blocks`` (and back, signed); an Anthropic client's
``thinking`` against an OpenAI-type model."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from translate_support import (
    CHAT_REQUEST,
    MESSAGES_REQUEST,
    anthropic_events,
    chat_chunks,
    load_events,
    load_json,
    replay_chat_stream,
    replay_messages_stream,
    run_stream,
)

from tollway.errors import BadRequest
from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat
from tollway.translate.openai_to_anthropic import (
    DEFAULT_MAX_TOKENS,
    THINKING_BUDGETS,
    OpenAIChatToAnthropic,
)
from tollway.translate.openai_to_anthropic_response import REASONING_SEPARATOR

CLAUDE = "claude-sonnet-4-5-20250929"
USER = {"role": "user", "content": "Which is larger, 9.11 or 9.9?"}
SIGNED = {"type": "thinking", "thinking": "Compare tenths.", "signature": "EqQBCgIYAhIM1gbc"}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"}
THOUGHT = (
    "The user wants the screenshot's error explained. "
    "The stack trace points at line 42: a None dereference."
)
TOOL = {
    "type": "function",
    "function": {"name": "read_file", "parameters": {"type": "object", "properties": {}}},
}


def to_anthropic(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "claude-agent")
    body.setdefault("messages", [USER])
    return OpenAIChatToAnthropic(body).request(CLAUDE)


def dropped_parameters(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {
        record.fields["parameter"]  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "tollway.translate" and hasattr(record, "fields")
    }


def tool_loop(assistant_extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A conversation whose last message answers the assistant's tool call."""
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": "{}"},
    }
    return [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call], **assistant_extra},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "x = None"},
    ]


# reasoning_effort -> thinking


@pytest.mark.parametrize("effort", list(THINKING_BUDGETS))
def test_each_effort_has_its_budget_and_room_for_the_answer(effort: str) -> None:
    upstream = to_anthropic(reasoning_effort=effort)
    budget = THINKING_BUDGETS[effort]
    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert upstream["max_tokens"] == budget + DEFAULT_MAX_TOKENS
    assert upstream["max_tokens"] <= 32_768


def test_budgets_grow_with_effort_from_anthropic_s_minimum() -> None:
    budgets = list(THINKING_BUDGETS.values())
    assert budgets[0] == 1024
    assert budgets == sorted(budgets)


@pytest.mark.parametrize(
    ("limit", "budget"),
    [
        ({"max_completion_tokens": 20_000}, 8192),
        ({"max_tokens": 5000}, 4999),
        ({"max_tokens": 1025}, 1024),
    ],
)
def test_the_client_s_limit_holds_and_the_budget_fits_below_it(
    limit: dict[str, int], budget: int
) -> None:
    upstream = to_anthropic(reasoning_effort="medium", **limit)
    assert upstream["max_tokens"] == next(iter(limit.values()))
    assert upstream["thinking"]["budget_tokens"] == budget


def test_no_effort_or_none_means_no_thinking() -> None:
    assert "thinking" not in to_anthropic()
    upstream = to_anthropic(reasoning_effort="none")
    assert "thinking" not in upstream
    assert upstream["max_tokens"] == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize("effort", ["extreme", 3, ["low"]])
def test_an_unknown_effort_is_a_400(effort: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        to_anthropic(reasoning_effort=effort)
    assert caught.value.param == "reasoning_effort"


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 1024},
        {"tools": [TOOL], "tool_choice": "required"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "read_file"}}},
        {"messages": [USER, {"role": "assistant", "content": "Let me think:"}]},
        {"messages": tool_loop({})},
        {"messages": tool_loop({"reasoning_content": "unsigned reasoning"})},
        {"messages": tool_loop({"thinking_blocks": [{"type": "thinking", "thinking": "x"}]})},
    ],
    ids=[
        "limit-too-small",
        "required",
        "named-function",
        "prefill",
        "tool-loop-without-thinking",
        "tool-loop-unsigned",
        "tool-loop-signature-missing",
    ],
)
def test_where_anthropic_refuses_thinking_the_effort_is_dropped(
    body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    upstream = to_anthropic(reasoning_effort="high", **body)
    assert "thinking" not in upstream
    assert upstream["max_tokens"] == body.get("max_tokens", DEFAULT_MAX_TOKENS)
    assert "reasoning_effort" in dropped_parameters(caplog)


@pytest.mark.parametrize("blocks", [[SIGNED], [REDACTED, SIGNED]])
def test_a_tool_loop_with_its_signed_thinking_keeps_thinking_on(
    blocks: list[dict[str, Any]],
) -> None:
    upstream = to_anthropic(
        reasoning_effort="low", tools=[TOOL], messages=tool_loop({"thinking_blocks": blocks})
    )
    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assistant = upstream["messages"][1]["content"]
    assert assistant[: len(blocks)] == blocks
    assert assistant[-1]["type"] == "tool_use"


def test_sampling_anthropic_refuses_with_thinking_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    upstream = to_anthropic(reasoning_effort="low", temperature=0.2, top_p=0.5)
    assert "temperature" not in upstream
    assert "top_p" not in upstream
    assert dropped_parameters(caplog) == {"temperature", "top_p"}
    kept = to_anthropic(reasoning_effort="low", temperature=1, top_p=0.97)
    assert (kept["temperature"], kept["top_p"]) == (1, 0.97)
    unthinking = to_anthropic(temperature=0.2, top_p=0.5)
    assert (unthinking["temperature"], unthinking["top_p"]) == (0.2, 0.5)


def test_thinking_blocks_sent_back_are_cleaned_and_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    blocks = [
        {**SIGNED, "index": 0},
        {"type": "thinking", "thinking": "unsigned", "signature": ""},
        {**REDACTED, "index": 2},
        "junk",
    ]
    upstream = to_anthropic(
        messages=[
            USER,
            {"role": "assistant", "content": "9.9.", "thinking_blocks": blocks},
            {"role": "user", "content": "Why?"},
        ]
    )
    assert upstream["messages"][1]["content"] == [
        SIGNED,
        REDACTED,
        {"type": "text", "text": "9.9."},
    ]
    assert dropped_parameters(caplog) == {
        "messages[1].thinking_blocks[1]",
        "messages[1].thinking_blocks[3]",
    }


# Anthropic thinking -> OpenAI client


def test_a_message_with_thinking() -> None:
    translator = OpenAIChatToAnthropic(CHAT_REQUEST)
    completion = translator.response(load_json("anthropic_message_thinking.json"))
    message = ChatCompletion.model_validate(completion).choices[0].message
    assert message.content == "Line 42 reads a field of a missing user. Let me open the file."
    assert message.reasoning_content == THOUGHT  # type: ignore[attr-defined]
    original = load_json("anthropic_message_thinking.json")["content"]
    assert message.thinking_blocks == original[:2]  # type: ignore[attr-defined]
    assert message.tool_calls is not None
    assert message.tool_calls[0].id == "toolu_01Qb7WnS3kTzE4mYcV8dPa2L"


def test_a_message_without_thinking_has_no_reasoning_fields() -> None:
    completion = OpenAIChatToAnthropic(CHAT_REQUEST).response(
        load_json("anthropic_message_text.json")
    )
    assert completion["choices"][0]["message"].keys() == {"role", "content", "refusal"}


def test_a_thinking_stream() -> None:
    stream = OpenAIChatToAnthropic(
        {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    ).stream()
    events = run_stream(stream, load_events("anthropic_stream_thinking.sse"))
    deltas = [chunk.choices[0].delta for chunk in chat_chunks(events) if chunk.choices]
    reasoning = [
        delta.reasoning_content for delta in deltas if delta.model_extra.get("reasoning_content")
    ]  # type: ignore[union-attr]
    assert "".join(reasoning) == THOUGHT
    entries = [
        entry for delta in deltas for entry in (delta.model_extra or {}).get("thinking_blocks", [])
    ]
    original = load_json("anthropic_message_thinking.json")["content"]
    assert entries == [{"index": 0, **original[0]}, {"index": 1, **original[1]}]
    # The redacted block's entry comes at its start, the signed one's at its end: both
    # before any answer text.
    first_text = next(i for i, delta in enumerate(deltas) if delta.content)
    assert all("thinking_blocks" not in (delta.model_extra or {}) for delta in deltas[first_text:])

    _, final = replay_chat_stream(events)
    message = final.choices[0].message
    assert message.reasoning_content == THOUGHT
    assert message.content == "Line 42 reads a field of a missing user. Let me open the file."
    assert message.thinking_blocks == entries
    assert final.choices[0].finish_reason == "tool_calls"


def test_two_thinking_blocks_are_separated_in_reasoning_content() -> None:
    def event(data: dict[str, Any]) -> bytes:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()

    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {}}}
    events = [event(start)]
    for index, text in enumerate(["First.", "Second."]):
        block = {"type": "thinking", "thinking": "", "signature": ""}
        events += [
            event({"type": "content_block_start", "index": index, "content_block": block}),
            event(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": text},
                }
            ),
            event({"type": "content_block_stop", "index": index}),
        ]
    events.append(event({"type": "message_stop"}))
    _, final = replay_chat_stream(run_stream(OpenAIChatToAnthropic(CHAT_REQUEST).stream(), events))
    message = final.choices[0].message
    assert message.reasoning_content == "First." + REASONING_SEPARATOR + "Second."
    assert [entry["thinking"] for entry in message.thinking_blocks] == ["First.", "Second."]


def test_the_streamed_assistant_message_goes_back_with_its_signed_thinking() -> None:
    """What an OpenAI client does next: append the message, then the tool's result."""
    events = run_stream(
        OpenAIChatToAnthropic({**CHAT_REQUEST, "stream": True}).stream(),
        load_events("anthropic_stream_thinking.sse"),
    )
    _, final = replay_chat_stream(events)
    sent_back = final.choices[0].message.model_dump(exclude_none=True)
    call_id = sent_back["tool_calls"][0]["id"]
    messages = [USER, sent_back, {"role": "tool", "tool_call_id": call_id, "content": "x = None"}]
    upstream = to_anthropic(messages=messages, tools=[TOOL], reasoning_effort="medium")
    original = load_json("anthropic_message_thinking.json")["content"]
    assert upstream["messages"][1]["content"] == original
    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": 8192}


# An Anthropic client's thinking against an OpenAI-type model


def test_thinking_is_dropped_and_signed_blocks_sent_back_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    history = load_json("anthropic_message_thinking.json")["content"]
    body = {
        **MESSAGES_REQUEST,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "Why does it crash?"},
            {"role": "assistant", "content": history},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": history[3]["id"], "content": "x = None"}
                ],
            },
        ],
    }
    upstream = AnthropicToOpenAIChat(body).request("deepseek-reasoner")
    assert "thinking" not in upstream
    assert "reasoning_effort" not in upstream
    assert "thinking" not in json.dumps(upstream["messages"])
    assert upstream["messages"][1]["content"] == history[2]["text"]
    assert dropped_parameters(caplog) == {"thinking"}


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, True),
        ({"type": "adaptive"}, True),
        ({"type": "disabled"}, False),
        (None, False),
    ],
)
def test_upstream_reasoning_becomes_a_thinking_block_when_asked(
    thinking: dict[str, Any] | None, expected: bool
) -> None:
    body = {**MESSAGES_REQUEST, "thinking": thinking}
    message = Message.model_validate(
        AnthropicToOpenAIChat(body).response(load_json("openai_chat_completion_reasoning.json"))
    )
    kinds = [block.type for block in message.content]
    assert kinds == (["thinking", "text"] if expected else ["text"])
    if expected:
        block = message.content[0]
        assert block.thinking == "9.11 and 9.9: compare the tenths, 1 < 9."  # type: ignore[union-attr]
        assert block.signature == ""  # type: ignore[union-attr]
    assert message.content[-1].text == "9.9 is larger."  # type: ignore[union-attr]


def test_an_upstream_reasoning_stream_becomes_a_thinking_block_when_asked() -> None:
    body = {
        **MESSAGES_REQUEST,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    events = run_stream(
        AnthropicToOpenAIChat(body).stream(), load_events("openai_stream_reasoning.sse")
    )
    starts = [
        data["content_block"]["type"]
        for name, data in anthropic_events(events)
        if name == "content_block_start"
    ]
    assert starts == ["thinking", "text"]
    _, final = replay_messages_stream(events)
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == "9.11 and 9.9: compare the tenths, 1 < 9."
    assert final.content[1].text == "9.9 is larger."
    assert final.usage.output_tokens == 97

    unasked = run_stream(
        AnthropicToOpenAIChat({**MESSAGES_REQUEST, "stream": True}).stream(),
        load_events("openai_stream_reasoning.sse"),
    )
    _, final = replay_messages_stream(unasked)
    assert [block.type for block in final.content] == ["text"]
