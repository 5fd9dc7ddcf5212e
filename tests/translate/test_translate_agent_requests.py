"""What coding agents send: mid-conversation system messages, prompt-cache marks, tool
results holding screenshots, and signed thinking sent back, in both directions."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from translate_support import load_json

from tollway.errors import BadRequest
from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat
from tollway.translate.anthropic_to_openai_messages import TOOL_ATTACHMENTS
from tollway.translate.openai_to_anthropic import OpenAIChatToAnthropic

GPT = "gpt-5-2025-08-07"
CLAUDE = "claude-sonnet-4-5-20250929"
USER = {"role": "user", "content": "Fix the crash."}
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
BASE64_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
}
URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
CACHE_1H = {"type": "ephemeral", "ttl": "1h"}


def to_openai(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gpt-agent")
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", [USER])
    return AnthropicToOpenAIChat(body).request(GPT)


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


def test_the_recorded_agent_conversation_to_openai(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    body = load_json("anthropic_messages_request_agent.json")
    original = copy.deepcopy(body)
    assert AnthropicToOpenAIChat(body).request(GPT) == load_json(
        "anthropic_messages_request_agent.openai.json"
    )
    assert body == original, "the client body is not modified"
    assert dropped_parameters(caplog) == {"thinking"}


def test_the_recorded_agent_conversation_to_anthropic(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    body = load_json("openai_chat_request_agent.json")
    original = copy.deepcopy(body)
    assert OpenAIChatToAnthropic(body).request(CLAUDE) == load_json(
        "openai_chat_request_agent.anthropic.json"
    )
    assert body == original, "the client body is not modified"
    assert dropped_parameters(caplog) == {"temperature"}  # thinking is on


# Mid-conversation system messages (Anthropic client -> OpenAI model)


def test_a_system_message_inside_messages_keeps_its_place() -> None:
    messages = [
        USER,
        {"role": "system", "content": "Prefer zsh."},
        {"role": "assistant", "content": "Looking."},
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Be brief.", "cache_control": CACHE_1H},
                {"type": "text", "text": ""},
                {"type": "text", "text": "No emojis."},
            ],
        },
        {"role": "user", "content": "Go on."},
    ]
    converted = to_openai(system="Top.", messages=messages)["messages"]
    assert converted == [
        {"role": "system", "content": "Top."},
        USER,
        {"role": "system", "content": "Prefer zsh."},
        {"role": "assistant", "content": "Looking."},
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "No emojis."},
        {"role": "user", "content": "Go on."},
    ]


def test_a_leading_or_empty_system_message() -> None:
    messages = [{"role": "system", "content": "First."}, {"role": "system", "content": ""}, USER]
    assert to_openai(messages=messages)["messages"] == [
        {"role": "system", "content": "First."},
        USER,
    ]


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (42, "messages[1].content"),
        ([URL_IMAGE], "messages[1].content[0]"),
    ],
)
def test_a_system_message_holds_text_only(content: Any, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        to_openai(messages=[USER, {"role": "system", "content": content}])
    assert caught.value.param == param


# cache_control: dropped towards OpenAI, kept towards Anthropic


def test_cache_marks_everywhere_are_dropped_towards_openai(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    mark = {"type": "ephemeral", "ttl": "5m", "future_field": 1}
    upstream = to_openai(
        system=[{"type": "text", "text": "Sys.", "cache_control": mark}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look.", "cache_control": mark},
                    {**URL_IMAGE, "cache_control": mark},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Notes."},
                        "cache_control": mark,
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Calling.", "cache_control": mark},
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "f",
                        "input": {},
                        "cache_control": mark,
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "ok", "cache_control": mark}],
                        "cache_control": mark,
                    }
                ],
            },
        ],
        tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": mark}],
        cache_control={"type": "ephemeral"},
    )
    assert "cache_control" not in json.dumps(upstream)
    assert upstream["messages"][0] == {"role": "system", "content": "Sys."}
    assert upstream["messages"][-1] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert dropped_parameters(caplog) == {"cache_control"}  # the top-level one


def test_cache_marks_on_content_parts_reach_anthropic_unchanged() -> None:
    mark = {"type": "ephemeral", "ttl": "1h", "future_field": [1]}
    pdf = {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}
    upstream = to_anthropic(
        messages=[
            {
                "role": "system",
                "content": [{"type": "text", "text": "Sys.", "cache_control": mark}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Read these.", "cache_control": mark},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a.png"},
                        "cache_control": mark,
                    },
                    {"type": "file", "file": pdf, "cache_control": mark},
                ],
            },
        ]
    )
    assert upstream["system"] == [{"type": "text", "text": "Sys.", "cache_control": mark}]
    assert [block["cache_control"] for block in upstream["messages"][0]["content"]] == [mark] * 3
    assert upstream["messages"][0]["content"][1]["source"] == {
        "type": "url",
        "url": "https://example.com/a.png",
    }


def test_a_message_level_cache_mark_goes_on_the_message_s_last_block() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    upstream = to_anthropic(
        messages=[
            {"role": "system", "content": "Sys.", "cache_control": CACHE_1H},
            {"role": "user", "content": "Hi.", "cache_control": CACHE_1H},
            {
                "role": "assistant",
                "content": "Calling.",
                "tool_calls": [call],
                "cache_control": CACHE_1H,
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok", "cache_control": CACHE_1H},
            {"role": "user", "content": "Thanks."},
        ]
    )
    assert upstream["system"] == [{"type": "text", "text": "Sys.", "cache_control": CACHE_1H}]
    user, assistant, results = upstream["messages"]
    assert user == {
        "role": "user",
        "content": [{"type": "text", "text": "Hi.", "cache_control": CACHE_1H}],
    }
    assert [block.get("cache_control") for block in assistant["content"]] == [None, CACHE_1H]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "ok", "cache_control": CACHE_1H},
        {"type": "text", "text": "Thanks."},
    ]


def test_cache_marks_on_tools_reach_anthropic_unchanged() -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
        "cache_control": CACHE_1H,
    }
    upstream = to_anthropic(
        tools=[tool, {**tool, "function": {"name": "g"}, "cache_control": None}]
    )
    assert upstream["tools"] == [
        {
            "name": "f",
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": CACHE_1H,
        },
        {"name": "g", "input_schema": {"type": "object", "properties": {}}},
    ]


def test_unmarked_system_text_stays_a_string() -> None:
    assert to_anthropic(messages=[{"role": "system", "content": "Sys."}, USER])["system"] == "Sys."


# Tool results holding images


def tool_turns(*results: dict[str, Any], text: str | None = None) -> list[dict[str, Any]]:
    calls = [
        {"type": "tool_use", "id": result["tool_use_id"], "name": "screenshot", "input": {}}
        for result in results
    ]
    rest = [{"type": "text", "text": text}] if text else []
    return [
        USER,
        {"role": "assistant", "content": calls},
        {"role": "user", "content": [*results, *rest]},
    ]


def test_tool_result_images_follow_the_tool_messages() -> None:
    first = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "Window A."}, BASE64_IMAGE],
    }
    second = {"type": "tool_result", "tool_use_id": "toolu_2", "content": [URL_IMAGE]}
    converted = to_openai(messages=tool_turns(first, second, text="Compare them."))["messages"]
    assert converted[2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Window A."},
        {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": TOOL_ATTACHMENTS.format(call_id="toolu_1")},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": TOOL_ATTACHMENTS.format(call_id="toolu_2")},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": "Compare them."},
            ],
        },
    ]


def test_a_failed_tool_result_with_a_pdf_and_a_text_document() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        "title": "report.pdf",
    }
    notes = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "n"},
    }
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [notes, pdf],
        "is_error": True,
    }
    converted = to_openai(messages=tool_turns(result))["messages"]
    assert converted[2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: n"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": TOOL_ATTACHMENTS.format(call_id="toolu_1")},
                {
                    "type": "file",
                    "file": {
                        "filename": "report.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0x",
                    },
                },
            ],
        },
    ]


def test_an_openai_tool_message_with_an_image_becomes_a_tool_result_with_it() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}}
    upstream = to_anthropic(
        messages=[
            USER,
            {"role": "assistant", "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": "c1",
                "content": [
                    {"type": "text", "text": "Captured."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ]
    )
    assert upstream["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "c1",
            "content": [
                {"type": "text", "text": "Captured."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        }
    ]
