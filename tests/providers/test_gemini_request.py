"""OpenAI chat -> Gemini request translation."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from tollway.errors import BadRequest
from tollway.translate.openai_to_gemini import SKIP_SIGNATURE, OpenAIChatToGemini

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def translate(body: dict[str, Any], model: str = "gemini-2.5-flash") -> dict[str, Any]:
    return OpenAIChatToGemini({"model": "chat-model", **body}).request(model)


def test_full_request_mapping() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture, and the weather?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": '{"temp_c": 21}'},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "stop": "END",
        "seed": 7,
        "n": 1,
    }
    assert translate(body) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this picture, and the weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city.",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "seed": 7,
            "candidateCount": 1,
        },
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
    out = translate({**body, "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_tool_results_map_back_by_name_with_repeated_ids() -> None:
    """Each turn's calls are numbered from call_0; a result goes to the latest such call."""

    def turn(name: str) -> list[dict[str, Any]]:
        call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": ""}}
        return [
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_0", "content": "done"},
        ]

    messages = [{"role": "user", "content": "go"}, *turn("first"), *turn("second")]
    contents = translate({"messages": messages})["contents"]
    responses = [
        part["functionResponse"]
        for content in contents
        for part in content["parts"]
        if "functionResponse" in part
    ]
    assert responses == [
        {"name": "first", "response": {"output": "done"}},
        {"name": "second", "response": {"output": "done"}},
    ]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "first", "args": {}}


def test_unknown_tool_call_id_is_a_400() -> None:
    messages = [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    with pytest.raises(BadRequest, match="call_9"):
        translate({"messages": messages})


def test_thought_signatures_round_trip_and_placeholder_for_gemini_3() -> None:
    signed = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "a", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}},
    }
    unsigned = [
        {"id": "call_0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_1", "type": "function", "function": {"name": "b", "arguments": "{}"}},
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]

    def parts(calls: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
        history = [*messages, {"role": "assistant", "tool_calls": calls}]
        result: list[dict[str, Any]] = translate({"messages": history}, model)["contents"][1][
            "parts"
        ]
        return result

    assert parts([signed], "gemini-2.5-pro")[0]["thoughtSignature"] == "c2lnbmF0dXJl"
    assert parts([signed], "gemini-3-pro-preview")[0]["thoughtSignature"] == "c2lnbmF0dXJl"
    # A client that dropped the signature: only Gemini 3+ needs the placeholder, and
    # only on the first call of the step.
    third = parts(unsigned, "gemini-3-pro-preview")
    assert [p.get("thoughtSignature") for p in third] == [SKIP_SIGNATURE, None]
    assert all("thoughtSignature" not in p for p in parts(unsigned, "gemini-2.5-flash"))


def test_response_format_and_penalties() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "max_tokens": 50,
        "stop": ["a", "b"],
    }
    assert translate(body)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.1,
        "maxOutputTokens": 50,
        "stopSequences": ["a", "b"],
    }
    json_mode = translate({**body, "response_format": {"type": "json_object"}})
    assert json_mode["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseJsonSchema" not in json_mode["generationConfig"]


def test_audio_and_pdf_go_inline() -> None:
    content = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    parts = translate({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "functions": []}, None),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom"}]}, "tools"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "sometimes"},
            "tool_choice",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "1", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "messages",
        ),
    ],
)
def test_untranslatable_requests_are_400s(body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        translate(body)
    assert caught.value.param == param


def test_unknown_parameters_are_dropped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}, "user": "u1"}
    with caplog.at_level(logging.INFO, logger="tollway.translate"):
        out = translate(body)
    assert "logit_bias" not in orjson.dumps(out).decode()
    dropped = [r.__dict__["fields"]["parameter"] for r in caplog.records]
    assert dropped == ["logit_bias", "user"]
