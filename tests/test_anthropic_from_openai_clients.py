"""The official OpenAI SDK on a model served by Anthropic: cache marks, reasoning and
thinking, images, tool choices and tool results, and beta headers, checked in what the
client gets and in what the fake Anthropic upstream received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from fake_upstream import TEXT, FakeUpstream, Respond
from harness import CLAUDE

FIXTURES = Path(__file__).parent / "translate" / "fixtures"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CACHE_1H = {"type": "ephemeral", "ttl": "1h"}
USER = {"role": "user", "content": "Why does the app crash?"}
READ_FILE: Any = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def recorded(name: str) -> Respond:
    """The fake upstream answers with a recorded Anthropic body or stream."""
    body = (FIXTURES / name).read_bytes()
    kind = "text/event-stream" if name.endswith(".sse") else "application/json"
    return Respond(body=body, content_type=kind)


def answer(oai: openai.OpenAI, stream: bool, **call: Any) -> str:
    """The reply's text, streamed or not."""
    if stream:
        chunks = oai.chat.completions.create(stream=True, **call)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return oai.chat.completions.create(**call).choices[0].message.content or ""


def received(fake: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = fake.last("/v1/messages").body
    return body


# Prompt caching (LiteLLM's convention: cache_control on parts, messages and tools)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cache_marks_reach_anthropic_unchanged(
    oai: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    messages: Any = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are terse.", "cache_control": CACHE_1H}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe:", "cache_control": {"type": "ephemeral"}},
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG}"},
                    "cache_control": CACHE_1H,
                },
            ],
        },
        {"role": "assistant", "content": "A dot.", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "And now?", "cache_control": CACHE_1H},
    ]
    tools: Any = [{**READ_FILE, "cache_control": CACHE_1H}]
    assert answer(oai, stream, model=CLAUDE, messages=messages, tools=tools) == TEXT
    body = received(fake)
    assert body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": CACHE_1H}]
    user, assistant, last = body["messages"]
    assert [block["cache_control"] for block in user["content"]] == [
        {"type": "ephemeral"},
        CACHE_1H,
    ]
    assert assistant["content"] == [
        {"type": "text", "text": "A dot.", "cache_control": {"type": "ephemeral"}}
    ]
    assert last["content"] == [{"type": "text", "text": "And now?", "cache_control": CACHE_1H}]
    assert body["tools"][0]["cache_control"] == CACHE_1H


# reasoning_effort -> thinking; thinking -> reasoning_content and thinking_blocks


def test_reasoning_and_signed_thinking_whole(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(recorded("anthropic_message_thinking.json"))
    first = oai.chat.completions.create(
        model=CLAUDE, messages=[USER], tools=[READ_FILE], reasoning_effort="low"
    )
    assert received(fake)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    message = first.choices[0].message
    original = json.loads((FIXTURES / "anthropic_message_thinking.json").read_bytes())["content"]
    assert message.reasoning_content == original[0]["thinking"]  # type: ignore[attr-defined]
    assert message.thinking_blocks == original[:2]  # type: ignore[attr-defined]
    assert message.tool_calls is not None

    # The client appends the message as it came, then the tool's result.
    call = message.tool_calls[0]
    oai.chat.completions.create(
        model=CLAUDE,
        messages=[
            USER,
            message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "user = None"},
        ],
        tools=[READ_FILE],
        reasoning_effort="low",
    )
    body = received(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["messages"][1]["content"] == original
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "user = None"}
    ]


def test_reasoning_and_signed_thinking_streamed(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(recorded("anthropic_stream_thinking.sse"))
    with oai.chat.completions.stream(
        model=CLAUDE, messages=[USER], tools=[READ_FILE], reasoning_effort="high", max_tokens=6000
    ) as stream:
        final = stream.get_final_completion()
    body = received(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 5999}
    assert body["max_tokens"] == 6000
    message = final.choices[0].message
    original = json.loads((FIXTURES / "anthropic_message_thinking.json").read_bytes())["content"]
    assert message.reasoning_content == original[0]["thinking"]  # type: ignore[attr-defined]
    assert message.content == original[2]["text"]
    assert [call.function.arguments for call in message.tool_calls or []] == [
        '{"path": "app/users.py"}'
    ]

    sent_back = message.model_dump(exclude_none=True)
    tool_result = {
        "role": "tool",
        "tool_call_id": sent_back["tool_calls"][0]["id"],
        "content": "ok",
    }
    assert (
        answer(
            oai,
            True,
            model=CLAUDE,
            messages=[USER, sent_back, tool_result],
            tools=[READ_FILE],
            reasoning_effort="high",
        )
        == TEXT
    )
    body = received(fake)
    assert body["messages"][1]["content"] == original
    assert body["thinking"]["type"] == "enabled"


def test_a_tool_loop_without_its_thinking_runs_without_thinking(
    oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": "{}"},
    }
    messages: Any = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"},
    ]
    oai.chat.completions.create(
        model=CLAUDE, messages=messages, tools=[READ_FILE], reasoning_effort="medium"
    )
    assert "thinking" not in received(fake)


# Images and tool choices


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_images_base64_and_url(oai: openai.OpenAI, fake: FakeUpstream, stream: bool) -> None:
    content: Any = [
        {"type": "text", "text": "Compare:"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg", "detail": "low"}},
    ]
    answer(oai, stream, model=CLAUDE, messages=[{"role": "user", "content": content}])
    assert received(fake)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.jpg"}},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("none", None, {"type": "none"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
    ids=["auto", "required", "named", "none", "no-parallel"],
)
def test_tool_choices_and_tool_calls_whole(
    oai: openai.OpenAI,
    fake: FakeUpstream,
    tool_choice: Any,
    parallel: bool | None,
    expected: dict[str, Any],
) -> None:
    fake.script(recorded("anthropic_message_tool_use.json"))
    extra: dict[str, Any] = {} if parallel is None else {"parallel_tool_calls": parallel}
    reply = oai.chat.completions.create(
        model=CLAUDE, messages=[USER], tools=[WEATHER], tool_choice=tool_choice, **extra
    )
    assert received(fake)["tool_choice"] == expected
    calls = reply.choices[0].message.tool_calls or []
    assert [json.loads(call.function.arguments)["city"] for call in calls] == ["Paris", "Tokyo"]
    assert reply.choices[0].finish_reason == "tool_calls"


def test_tool_calls_streamed_then_results_with_an_image(
    oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(recorded("anthropic_stream_tool_use.sse"))
    with oai.chat.completions.stream(
        model=CLAUDE, messages=[USER], tools=[WEATHER], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    assert received(fake)["tool_choice"] == {"type": "any"}
    calls = final.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather", "get_weather"]

    results: Any = [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 °C"},
        {
            "role": "tool",
            "tool_call_id": calls[1].id,
            "content": [
                {"type": "text", "text": "Radar:"},
                {"type": "image_url", "image_url": {"url": "https://example.com/radar.png"}},
            ],
        },
    ]
    assistant: Any = final.choices[0].message.model_dump(exclude_none=True)
    oai.chat.completions.create(model=CLAUDE, messages=[USER, assistant, *results], tools=[WEATHER])
    turn = received(fake)["messages"][2]
    assert turn == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18 °C"},
            {
                "type": "tool_result",
                "tool_use_id": calls[1].id,
                "content": [
                    {"type": "text", "text": "Radar:"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/radar.png"},
                    },
                ],
            },
        ],
    }


# Headers


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_beta_and_version_headers_reach_anthropic(
    oai: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    headers = {"anthropic-beta": "extended-cache-ttl-2025-04-11", "anthropic-version": "2023-06-01"}
    assert answer(oai, stream, model=CLAUDE, messages=[USER], extra_headers=headers) == TEXT
    upstream = fake.last("/v1/messages").headers
    assert upstream["anthropic-beta"] == "extended-cache-ttl-2025-04-11"
    assert upstream["anthropic-version"] == "2023-06-01"
