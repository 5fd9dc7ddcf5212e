"""OpenAI chat requests become the Anthropic Messages requests that mean the same."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from translate_support import load_json

from tollway.errors import BadRequest
from tollway.translate.openai_to_anthropic import DEFAULT_MAX_TOKENS, OpenAIChatToAnthropic

UPSTREAM = "claude-sonnet-4-5-20250929"
USER = {"role": "user", "content": "What's the weather in Paris?"}


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "claude-travel")
    body.setdefault("messages", [USER])
    return OpenAIChatToAnthropic(body).request(UPSTREAM)


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


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_the_recorded_conversation_translates_to_the_expected_request() -> None:
    body = load_json("openai_chat_request.json")
    original = copy.deepcopy(body)
    upstream = OpenAIChatToAnthropic(body).request(UPSTREAM)
    assert upstream == load_json("openai_chat_request.anthropic.json")
    assert body == original, "the client body is not modified"


def test_parameters_anthropic_cannot_express_are_dropped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    OpenAIChatToAnthropic(load_json("openai_chat_request.json")).request(UPSTREAM)
    assert dropped_parameters(caplog) == {
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "store",
        "metadata",
        "service_tier",
    }


def test_unknown_and_null_parameters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    upstream = translate(prediction={"type": "content", "content": "x"}, seed=None)
    assert "prediction" not in upstream
    assert dropped_parameters(caplog) == {"prediction"}


def test_one_system_message_is_sent_as_a_string_and_none_is_omitted() -> None:
    upstream = translate(messages=[{"role": "system", "content": "Be brief."}, USER])
    assert upstream["system"] == "Be brief."
    assert upstream["messages"] == [USER]
    assert "system" not in translate()


def test_a_system_message_in_the_middle_is_hoisted_in_order() -> None:
    upstream = translate(
        messages=[
            {"role": "developer", "content": "First."},
            USER,
            {"role": "system", "content": [{"type": "text", "text": "Second."}]},
            {"role": "assistant", "content": "Sunny."},
        ]
    )
    assert upstream["system"] == [
        {"type": "text", "text": "First."},
        {"type": "text", "text": "Second."},
    ]
    assert [turn["role"] for turn in upstream["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({}, DEFAULT_MAX_TOKENS),
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ],
)
def test_max_tokens(limits: dict[str, int], expected: int) -> None:
    assert translate(**limits)["max_tokens"] == expected


def test_sampling_stop_user_and_stream() -> None:
    upstream = translate(
        temperature=0.7,
        top_p=0.5,
        stop="END",
        user="u-1",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert upstream["temperature"] == 0.7
    assert upstream["top_p"] == 0.5
    assert upstream["stop_sequences"] == ["END"]
    assert upstream["metadata"] == {"user_id": "u-1"}
    assert upstream["stream"] is True
    assert "stream_options" not in upstream
    assert translate(safety_identifier="hash-9")["metadata"] == {"user_id": "hash-9"}
    assert "stop_sequences" not in translate(stop=[])
    assert rejected(stop=[1]).param == "stop"


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
def test_tool_choice(
    tool_choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(**body).get("tool_choice") == expected


def test_parallel_tool_calls_without_tools_sends_no_tool_choice() -> None:
    assert "tool_choice" not in translate(parallel_tool_calls=False)


def test_tool_choice_anthropic_cannot_express_is_rejected() -> None:
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    assert rejected(tools=[WEATHER_TOOL], tool_choice=allowed).param == "tool_choice"
    malformed = {"type": "function", "function": "get_weather"}
    assert rejected(tools=[WEATHER_TOOL], tool_choice=malformed).param == "tool_choice"


def test_tool_definitions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.translate")
    bare = {"type": "function", "function": {"name": "now", "strict": True}}
    upstream = translate(tools=[WEATHER_TOOL, bare])
    assert upstream["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert dropped_parameters(caplog) == {"tools[1].function.strict"}


def test_custom_tools_are_rejected() -> None:
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    assert rejected(tools=[WEATHER_TOOL, custom]).param == "tools[1]"


def tool_call(arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    function = {"name": "get_weather", "arguments": arguments}
    return {"id": call_id, "type": "function", "function": function}


def test_invalid_tool_call_arguments_are_a_400_naming_the_field() -> None:
    messages = [
        USER,
        {"role": "assistant", "tool_calls": [tool_call('{"city": "Paris"}'), tool_call("{city")]},
    ]
    error = rejected(messages=messages)
    assert error.param == "messages[1].tool_calls[1].function.arguments"
    assert "messages[1].tool_calls[1].function.arguments" in error.message
    not_an_object = [USER, {"role": "assistant", "tool_calls": [tool_call("[1, 2]")]}]
    assert rejected(messages=not_an_object).param == "messages[1].tool_calls[0].function.arguments"


def test_empty_tool_call_arguments_mean_no_arguments() -> None:
    messages = [
        USER,
        {"role": "assistant", "content": "Checking.", "tool_calls": [tool_call("")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"},
        {"role": "user", "content": "And?"},
    ]
    upstream = translate(messages=messages)
    assert upstream["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
    ]
    # The user's text joins the tool result's turn, after it.
    assert upstream["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18 °C"},
            {"type": "text", "text": "And?"},
        ],
    }


def test_tool_results_come_first_in_a_merged_turn() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [tool_call("{}")]},
        {"role": "user", "content": "(result follows)"},
        {"role": "tool", "tool_call_id": "call_1", "content": []},
    ]
    turn = translate(messages=messages)["messages"][1]
    assert turn["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1"},
        {"type": "text", "text": "(result follows)"},
    ]


def test_consecutive_assistant_messages_merge_and_empty_ones_vanish() -> None:
    messages = [
        USER,
        {"role": "assistant", "content": "Let me see."},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
    ]
    assert translate(messages=messages)["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me see."}, {"type": "text", "text": "Sunny."}],
    }


def test_an_assistant_refusal_is_kept_as_text() -> None:
    messages = [USER, {"role": "assistant", "content": None, "refusal": "I can't help with that."}]
    assert translate(messages=messages)["messages"][1]["content"] == "I can't help with that."


def test_pdf_file_parts_become_documents() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"},
    }
    upstream = translate(messages=[{"role": "user", "content": [part]}])
    assert upstream["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        }
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://host/cat.png"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
            "messages[0].content[0]",
        ),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "messages[0].content[0].file"),
        (
            {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}},
            "messages[0].content[0].file.file_data",
        ),
    ],
)
def test_content_parts_anthropic_cannot_take_are_rejected(part: dict[str, Any], param: str) -> None:
    assert rejected(messages=[{"role": "user", "content": [part]}]).param == param


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "function", "name": "f", "content": "x"}, "messages[0].role"),
        ({"role": "user", "content": 42}, "messages[0].content"),
        ({"role": "tool", "content": "x"}, "messages[0].tool_call_id"),
        (
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
            "messages[0].function_call",
        ),
        (
            {"role": "assistant", "tool_calls": [{"type": "custom", "id": "c"}]},
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_malformed_messages_are_rejected(message: dict[str, Any], param: str) -> None:
    assert rejected(messages=[message]).param == param


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("response_format", {"type": "json_object"}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("web_search_options", {}),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
    ],
)
def test_parameters_anthropic_cannot_honour_are_a_400_naming_them(
    parameter: str, value: Any
) -> None:
    error = rejected(**{parameter: value})
    assert error.param == parameter
    assert f"'{parameter}'" in error.message


def test_harmless_values_of_those_parameters_pass() -> None:
    upstream = translate(n=1, logprobs=False, modalities=["text"], response_format={"type": "text"})
    assert set(upstream) == {"model", "messages", "max_tokens"}


def test_json_schema_response_format_becomes_structured_output() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    upstream = translate(response_format=response_format)
    assert upstream["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
