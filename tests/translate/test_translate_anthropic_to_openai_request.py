"""Anthropic Messages requests become the OpenAI chat requests that mean the same."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from translate_support import load_json

from tollway.errors import BadRequest
from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat

UPSTREAM = "gpt-4.1-2025-04-14"
USER = {"role": "user", "content": "What's the weather in Paris?"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gpt-travel")
    body.setdefault("max_tokens", 256)
    body.setdefault("messages", [USER])
    return AnthropicToOpenAIChat(body).request(UPSTREAM)


def rejected(**body: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        translate(**body)
    assert caught.value.status == 400
    return caught.value


def dropped_parameters(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {
        record.fields["parameter"]  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "tollway.translate" and hasattr(record, "fields")
    }


def test_the_recorded_conversation_translates_to_the_expected_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    body = load_json("anthropic_messages_request.json")
    original = copy.deepcopy(body)
    upstream = AnthropicToOpenAIChat(body).request(UPSTREAM)
    assert upstream == load_json("anthropic_messages_request.openai.json")
    assert body == original, "the client body is not modified"
    assert dropped_parameters(caplog) == {"top_k", "thinking"}


def test_a_string_system_prompt_and_plain_turns() -> None:
    upstream = translate(
        system="Be brief.", messages=[USER, {"role": "assistant", "content": "Sunny."}]
    )
    assert upstream["messages"] == [
        {"role": "system", "content": "Be brief."},
        USER,
        {"role": "assistant", "content": "Sunny."},
    ]
    assert upstream["max_completion_tokens"] == 256
    assert "max_tokens" not in upstream


def test_the_max_tokens_field_is_a_provider_choice() -> None:
    class MaxTokensOnly(AnthropicToOpenAIChat):
        max_tokens_field = "max_tokens"

    body = {"model": "m", "max_tokens": 99, "messages": [USER]}
    assert MaxTokensOnly(body).request(UPSTREAM)["max_tokens"] == 99


def test_streaming_always_asks_for_usage() -> None:
    upstream = translate(stream=True)
    assert upstream["stream"] is True
    assert upstream["stream_options"] == {"include_usage": True}
    assert "stream" not in translate(stream=False)


@pytest.mark.parametrize(
    ("tool_choice", "expected_choice", "expected_parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "get_weather"}},
            False,
        ),
    ],
)
def test_tool_choice(
    tool_choice: dict[str, Any], expected_choice: Any, expected_parallel: bool | None
) -> None:
    upstream = translate(tools=[WEATHER_TOOL], tool_choice=tool_choice)
    assert upstream["tool_choice"] == expected_choice
    assert upstream.get("parallel_tool_calls") == expected_parallel


def test_bad_tool_choice_is_rejected() -> None:
    assert rejected(tools=[WEATHER_TOOL], tool_choice={"type": "tool"}).param == "tool_choice"


def test_tool_definitions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    upstream = translate(tools=[WEATHER_TOOL, {"type": "custom", "name": "now", "strict": True}])
    assert upstream["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert dropped_parameters(caplog) == {"tools[1].strict"}


def test_server_tools_and_mcp_servers_are_rejected() -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    assert rejected(tools=[WEATHER_TOOL, web_search]).param == "tools[1]"
    mcp = [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]
    assert rejected(mcp_servers=mcp).param == "mcp_servers"


def test_output_config(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    upstream = translate(
        output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"}
    )
    assert upstream["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert dropped_parameters(caplog) == {"output_config.effort"}
    assert (
        rejected(output_config={"format": {"type": "json_schema"}}).param == "output_config.format"
    )


def test_tool_results_become_tool_messages_with_the_same_ids() -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "18 °C"}],
                },
                {"type": "tool_result", "tool_use_id": "toolu_2"},
            ],
        },
    ]
    converted = translate(messages=messages)["messages"]
    assert converted[1]["content"] is None
    assert [json.loads(call["function"]["arguments"]) for call in converted[1]["tool_calls"]] == [
        {"city": "Paris"},
        {},
    ]
    assert converted[2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 °C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
    ]


def test_documents() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
    }
    text = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
    }
    content = translate(messages=[{"role": "user", "content": [pdf, text]}])["messages"][0][
        "content"
    ]
    assert content == [
        {
            "type": "file",
            "file": {
                "filename": "document.pdf",
                "file_data": "data:application/pdf;base64,JVBERi0x",
            },
        },
        {"type": "text", "text": "Plain notes."},
    ]


def test_thinking_only_assistant_turns_are_dropped() -> None:
    thinking = {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}
    converted = translate(messages=[USER, thinking, {"role": "user", "content": "Well?"}])[
        "messages"
    ]
    assert converted == [USER, {"role": "user", "content": "Well?"}]


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "tool", "content": "x"}, "messages[0].role"),
        ({"role": "system", "content": [{"type": "image"}]}, "messages[0].content[0]"),
        ({"role": "user", "content": 42}, "messages[0].content"),
        (
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
                ],
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}],
            },
            "messages[0].content[0]",
        ),
        (
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "search_result", "source": "s", "title": "t", "content": []}
                        ],
                    }
                ],
            },
            "messages[0].content[0].content[0]",
        ),
        (
            {"role": "user", "content": [{"type": "tool_result"}]},
            "messages[0].content[0].tool_use_id",
        ),
        (
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}],
            },
            "messages[0].content[0].input",
        ),
        (
            {
                "role": "assistant",
                "content": [
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}
                ],
            },
            "messages[0].content[0]",
        ),
    ],
)
def test_content_an_openai_model_cannot_take_is_rejected(
    message: dict[str, Any], param: str
) -> None:
    assert rejected(messages=[message]).param == param


def test_system_blocks_must_be_text() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
    assert rejected(system=[image]).param == "system[0]"


def test_unknown_parameters_are_dropped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    upstream = translate(service_tier="auto", container="c-1", context_management=None)
    assert set(upstream) == {"model", "messages", "max_completion_tokens"}
    assert dropped_parameters(caplog) == {"service_tier", "container"}
