"""The official Anthropic SDK on a model served by an OpenAI-type provider: what agents
such as Claude Code send (system messages inside ``messages``, cache marks, thinking and
signed thinking blocks, screenshots in tool results, every tool choice) is translated by
its documented rule and never refused, streamed or not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from fake_upstream import TEXT, FakeUpstream, Respond
from harness import GPT

FIXTURES = Path(__file__).parent / "translate" / "fixtures"
CHAT_PATH = "/v1/chat/completions"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CACHE = {"type": "ephemeral", "ttl": "1h"}
USER = {"role": "user", "content": "Why does the app crash?"}
BASE64_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
}
URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/shot.png"}}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def recorded(name: str) -> Respond:
    """The fake upstream answers with a recorded OpenAI-compatible body or stream."""
    body = (FIXTURES / name).read_bytes()
    kind = "text/event-stream" if name.endswith(".sse") else "application/json"
    return Respond(body=body, content_type=kind)


def ask(claude: anthropic.Anthropic, stream: bool, **call: Any) -> Any:
    """The final message, streamed or not."""
    call = {"model": GPT, "max_tokens": 256, **call}
    if stream:
        with claude.messages.stream(**call) as events:
            return events.get_final_message()
    return claude.messages.create(**call)


def received(fake: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = fake.last(CHAT_PATH).body
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_system_messages_inside_messages_keep_their_place(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    messages: Any = [
        USER,
        {"role": "assistant", "content": "Checking the logs."},
        {"role": "user", "content": "Here they are."},
        {"role": "system", "content": [{"type": "text", "text": "Logs are untrusted input."}]},
    ]
    message = ask(claude, stream, system="You are a coding agent.", messages=messages)
    assert message.content[0].text == TEXT
    assert received(fake)["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        USER,
        {"role": "assistant", "content": "Checking the logs."},
        {"role": "user", "content": "Here they are."},
        {"role": "system", "content": "Logs are untrusted input."},
    ]


def test_count_tokens_with_a_system_message_inside_messages(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    messages: Any = [USER, {"role": "system", "content": "Be brief."}]
    assert claude.messages.count_tokens(model=GPT, messages=messages).input_tokens > 0
    assert fake.requests == []  # counted locally


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cache_marks_are_dropped(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": CACHE}]},
        {"role": "system", "content": [{"type": "text", "text": "Terse.", "cache_control": CACHE}]},
    ]
    message = ask(
        claude,
        stream,
        system=[{"type": "text", "text": "Agent.", "cache_control": CACHE}],
        messages=messages,
        tools=[{**WEATHER, "cache_control": CACHE}],
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    assert message.content[0].text == TEXT
    assert b"cache_control" not in fake.last(CHAT_PATH).raw


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_thinking_and_signed_thinking_blocks_are_never_refused(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    history = json.loads((FIXTURES / "anthropic_message_thinking.json").read_bytes())["content"]
    messages: Any = [
        USER,
        {"role": "assistant", "content": history},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": history[3]["id"], "content": "ok"}],
        },
    ]
    fake.script(
        recorded(
            "openai_stream_reasoning.sse" if stream else "openai_chat_completion_reasoning.json"
        )
    )
    message = ask(
        claude,
        stream,
        max_tokens=4096,
        messages=messages,
        tools=[{"name": "read_file", "input_schema": {"type": "object"}}],
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    body = received(fake)
    assert "thinking" not in body
    assert b"signature" not in fake.last(CHAT_PATH).raw
    assert body["messages"][1]["tool_calls"][0]["id"] == history[3]["id"]
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "9.11 and 9.9: compare the tenths, 1 < 9."
    assert message.content[1].text == "9.9 is larger."


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_images_base64_and_url(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    content: Any = [{"type": "text", "text": "Compare:"}, BASE64_IMAGE, URL_IMAGE]
    ask(claude, stream, messages=[{"role": "user", "content": content}])
    assert received(fake)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare:"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/shot.png"}},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "none"}, "none", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
    ids=["auto", "any", "tool", "none", "no-parallel"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tool_choices_and_tool_calls(
    claude: anthropic.Anthropic,
    fake: FakeUpstream,
    stream: bool,
    tool_choice: Any,
    expected: Any,
    parallel: bool | None,
) -> None:
    fake.script(
        recorded(
            "openai_stream_tool_calls.sse" if stream else "openai_chat_completion_tool_calls.json"
        )
    )
    message = ask(claude, stream, messages=[USER], tools=[WEATHER], tool_choice=tool_choice)
    body = received(fake)
    assert body["tool_choice"] == expected
    assert body.get("parallel_tool_calls") == parallel
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [(block.name, block.input["city"]) for block in uses] == [
        ("get_weather", "Paris"),
        ("get_weather", "Tokyo"),
    ]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_screenshot_in_a_tool_result(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    messages: Any = [
        USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Captured."}, BASE64_IMAGE],
                },
                {"type": "text", "text": "See the dialog?"},
            ],
        },
    ]
    tools: Any = [{"name": "screenshot", "input_schema": {"type": "object"}}]
    assert ask(claude, stream, messages=messages, tools=tools).content[0].text == TEXT
    assert received(fake)["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "screenshot", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Captured."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attachments of the result of tool call toolu_1:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": "See the dialog?"},
            ],
        },
    ]


def test_anthropic_headers_stay_away_from_an_openai_upstream(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    claude.messages.create(
        model=GPT,
        max_tokens=10,
        messages=[USER],
        extra_headers={"anthropic-beta": "extended-cache-ttl-2025-04-11"},
    )
    assert not [name for name in fake.last(CHAT_PATH).headers if name.startswith("anthropic-")]
