"""OpenAI chat -> Bedrock Converse request translation."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.errors import BadRequest
from tollway.translate.openai_to_bedrock import OpenAIChatToBedrock

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return OpenAIChatToBedrock({"model": "chat-model", **body}).request("amazon.nova-pro-v1:0")


def test_full_request_mapping() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use metric units."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": CALL["id"], "content": '{"temp_c": 21}'},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": [TOOL],
        "tool_choice": "required",
        "max_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END"],
        "n": 1,
    }
    assert translate(body) == {
        "system": [{"text": "Be brief."}, {"text": "Use metric units."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Weather where this photo was taken?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "content": [{"text": '{"temp_c": 21}'}],
                        }
                    },
                    {"text": "Thanks!"},
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 300,
            "temperature": 0.3,
            "topP": 0.8,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Current weather for a city.",
                        "inputSchema": {"json": TOOL["function"]["parameters"]},  # type: ignore[index]
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "tools": [TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    config = translate(body)["toolConfig"]
    assert config.get("toolChoice") == expected


def test_tool_choice_none() -> None:
    """Converse has no "none": tools are left out, unless the history needs a toolConfig."""
    fresh = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [TOOL],
        "tool_choice": "none",
    }
    assert "toolConfig" not in translate(fresh)
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": CALL["id"], "content": "sunny"},
    ]
    config = translate({**fresh, "messages": history})["toolConfig"]
    assert "toolChoice" not in config
    assert config["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    tool = {"type": "function", "function": {"name": "now"}}
    spec = translate({"messages": [{"role": "user", "content": "t?"}], "tools": [tool]})
    assert spec["toolConfig"]["tools"][0] == {
        "toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}
    }


def test_documents_and_blank_text() -> None:
    content = [
        {"type": "text", "text": "   "},
        {
            "type": "file",
            "file": {
                "file_data": "data:application/pdf;base64,JVBERi0=",
                "filename": "Q3 report.v2.pdf",
            },
        },
    ]
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": ""}]
    assert translate({"messages": messages})["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "document": {
                        "format": "pdf",
                        "name": "Q3 report v2",
                        "source": {"bytes": "JVBERi0="},
                    }
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
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
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,Qk0="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "x"}}],
                    }
                ]
            },
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "function_call": "auto"}, None),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom"}]}, "tools"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [TOOL],
                "tool_choice": {"type": "function"},
            },
            "tool_choice",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "[1"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function",
        ),
    ],
)
def test_untranslatable_requests_are_400s(body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        translate(body)
    assert caught.value.param == param
