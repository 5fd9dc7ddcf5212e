"""OpenAI Responses client -> chat completions upstream: requests, responses, streams.

Streams are replayed through the OpenAI SDK's ``responses.stream`` (what Codex-like
clients and the SDK users read), over an in-process transport.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from translate_support import (
    FIXTURES,
    load_events,
    load_json,
    openai_client,
    run_stream,
)

from tollway.errors import BadRequest, UpstreamError
from tollway.translate.base import event_json
from tollway.translate.responses_to_openai import ResponsesToOpenAIChat

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
PNG = "data:image/png;base64,AAA"
PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}
AGENTS = {
    "type": "namespace",
    "name": "agents",
    "description": "Sub-agents.",
    "tools": [
        {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
        {"type": "function", "name": "close", "parameters": {"type": "object"}},
    ],
}


def translate(**body: Any) -> tuple[ResponsesToOpenAIChat, dict[str, Any]]:
    """The translator for a request and the chat request it builds."""
    translator = ResponsesToOpenAIChat({"model": "claude-any", **body})
    return translator, translator.request("upstream-model")


def test_instructions_and_string_input() -> None:
    _, chat = translate(input="Hello", instructions="Be brief.", max_output_tokens=64)
    assert chat == {
        "model": "upstream-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "max_completion_tokens": 64,
    }


def test_items_become_chat_messages_in_order() -> None:
    _, chat = translate(
        input=[
            {"type": "message", "role": "developer", "content": "Rules."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": PNG, "detail": "low"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look."}],
            },
            {"type": "function_call", "call_id": "c1", "name": "get_weather",
             "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather",
             "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "rain"}]},
            {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** x"},
            {"type": "custom_tool_call_output", "call_id": "c3", "output": "done"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
    )  # fmt: skip
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c3", "type": "function",
                 "function": {"name": "apply_patch", "arguments": '{"input":"*** x"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "done"},
    ]  # fmt: skip


def test_tools_custom_namespaced_and_server_ones() -> None:
    translator, chat = translate(
        input="hi",
        tools=[WEATHER, PATCH_TOOL, AGENTS, {"type": "web_search"}],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert names == ["get_weather", "apply_patch", "agents__spawn", "agents__close"]
    patch = chat["tools"][1]["function"]
    assert patch["parameters"]["required"] == ["input"]
    assert "start: /.+/" in patch["description"]
    assert chat["tools"][2]["function"]["description"].startswith("Sub-agents.")
    assert chat["tools"][0]["function"]["strict"] is False
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert translator.names.resolve("agents__close") == ("agents", "close", False)
    assert translator.names.resolve("apply_patch") == (None, "apply_patch", True)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ({"type": "custom", "name": "apply_patch"},
         {"type": "function", "function": {"name": "apply_patch"}}),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
        ({"type": "web_search"}, "auto"),
    ],
)  # fmt: skip
def test_tool_choice_forms(choice: Any, expected: Any) -> None:
    _, chat = translate(input="hi", tools=[WEATHER, PATCH_TOOL], tool_choice=choice)
    assert chat["tool_choice"] == expected


def test_settings_and_formats() -> None:
    _, chat = translate(
        input="hi",
        temperature=0.2,
        top_p=0.9,
        reasoning={"effort": "low", "summary": "auto"},
        text={
            "format": {"type": "json_schema", "name": "city", "schema": {"type": "object"},
                       "strict": True},
            "verbosity": "low",
        },
        user="u-1",
        stream=True,
        store=True,
        metadata={"a": "b"},
        include=["reasoning.encrypted_content"],
    )  # fmt: skip
    assert chat["temperature"] == 0.2 and chat["top_p"] == 0.9
    assert chat["reasoning_effort"] == "low"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["user"] == "u-1"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    for dropped in ("store", "metadata", "include", "verbosity"):
        assert dropped not in chat


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input[0].content[0]"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": 5}, "input"),
    ],
)  # fmt: skip
def test_refused_with_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        translate(**{"input": "hi", **body})
    assert caught.value.param == param


# ------------------------------------------------------------------------ responses


def test_text_completion_becomes_a_response() -> None:
    translator, _ = translate(input="hi", instructions="Be brief.")
    response = translator.response(load_json("openai_chat_completion_text.json"))
    assert response["object"] == "response" and response["id"].startswith("resp_")
    assert response["status"] == "completed"
    [message] = response["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text"
    assert response["instructions"] == "Be brief."
    usage = response["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_tool_calls_become_function_call_items() -> None:
    translator, _ = translate(input="hi", tools=[WEATHER])
    response = translator.response(load_json("openai_chat_completion_tool_calls.json"))
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert [c["call_id"] for c in calls] == [
        "call_Vx8HnWqa2yAYXbJf4hT1dLmE",
        "call_R2kq9ZpLw7sNfU3cVb6eTyQo",
    ]
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert all(c["id"].startswith("fc_") for c in calls)


def _completion(name: str, arguments: str, finish: str = "tool_calls") -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
             "finish_reason": finish},
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }  # fmt: skip


def test_custom_and_namespaced_calls_come_back_as_declared() -> None:
    translator, _ = translate(input="hi", tools=[PATCH_TOOL, AGENTS])
    custom = translator.response(_completion("apply_patch", '{"input": "*** Begin Patch"}'))
    assert custom["output"][0] == {
        "type": "custom_tool_call",
        "id": custom["output"][0]["id"],
        "call_id": "call_1",
        "name": "apply_patch",
        "input": "*** Begin Patch",
        "status": "completed",
    }
    spaced = translator.response(_completion("agents__spawn", "{}"))
    assert spaced["output"][0]["name"] == "spawn"
    assert spaced["output"][0]["namespace"] == "agents"


def test_length_is_incomplete() -> None:
    translator, _ = translate(input="hi")
    chat = load_json("openai_chat_completion_text.json")
    chat["choices"][0]["finish_reason"] = "length"
    response = translator.response(chat)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


# -------------------------------------------------------------------------- streams


def _replay(events: list[bytes]) -> tuple[list[Any], Any]:
    """What the OpenAI SDK's ``responses.stream`` yields, and its final response."""
    body = b"".join(events)
    with openai_client(body).responses.stream(model="claude-any", input="hi") as stream:
        seen = list(stream)
        final = stream.get_final_response()
    return seen, final


def _types(events: list[bytes]) -> list[str]:
    kinds = []
    for event in events:
        head, _, _ = event.partition(b"\n")
        data = event_json(event)
        assert head == b"event: " + data["type"].encode()
        kinds.append(data["type"])
    return kinds


def test_text_stream_is_the_sdk_event_sequence() -> None:
    translator, _ = translate(input="hi", stream=True)
    events = run_stream(translator.stream(), load_events("openai_stream_text.sse"))
    kinds = _types(events)
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    numbers = [event_json(e)["sequence_number"] for e in events]
    assert numbers == list(range(len(events)))
    seen, final = _replay(events)
    text = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert final.output_text == text and text
    assert final.usage is not None and final.usage.input_tokens > 0


def test_tool_call_stream_with_text_first() -> None:
    translator, _ = translate(input="hi", tools=[WEATHER], stream=True)
    events = run_stream(translator.stream(), load_events("openai_stream_tool_calls.sse"))
    seen, final = _replay(events)
    calls = [item for item in final.output if item.type == "function_call"]
    assert [orjson.loads(c.arguments)["city"] for c in calls] == ["Paris", "Tokyo"]
    assert all(c.call_id.startswith("call_") for c in calls)
    deltas = [e for e in seen if e.type == "response.function_call_arguments.delta"]
    assert "".join(d.delta for d in deltas if d.item_id == calls[0].id) == calls[0].arguments
    assert final.output_text.startswith("I'll check")


def test_interleaved_tool_calls_keep_their_own_items() -> None:
    translator, _ = translate(input="hi", tools=[WEATHER], stream=True)
    events = run_stream(translator.stream(), load_events("openai_stream_interleaved.sse"))
    _, final = _replay(events)
    calls = {item.name: orjson.loads(item.arguments) for item in final.output}
    assert calls["get_weather"] == {"city": "Paris"}
    assert calls["get_time"]["city"].startswith("Tok")


def test_custom_tool_stream_sends_the_input_whole() -> None:
    translator, _ = translate(input="hi", tools=[PATCH_TOOL], stream=True)
    arguments = orjson.dumps({"input": "*** Begin Patch\n*** End Patch"}).decode()
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_p", "function": {"name": "apply_patch", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": arguments[:10]}}]}}]},
        {"choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": arguments[10:]}}]}}]},
    ]  # fmt: skip
    stream = translator.stream()
    events = run_stream(stream, [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks])
    events += stream.feed(b"data: [DONE]\n\n")
    done = [event_json(e) for e in events if b"response.output_item.done" in e[:40]]
    assert done[0]["item"]["type"] == "custom_tool_call"
    assert done[0]["item"]["input"] == "*** Begin Patch\n*** End Patch"
    assert not any(b"function_call_arguments" in e for e in events)


def test_failure_mid_stream_is_response_failed() -> None:
    translator, _ = translate(input="hi", stream=True)
    stream = translator.stream()
    events = run_stream(stream, load_events("openai_stream_text.sse")[:3], finish=False)
    failure = stream.failure(UpstreamError("The provider's stream ended before its final event."))
    assert failure is not None
    assert event_json(failure[-1])["error"]["code"] == "upstream_error"  # the SDKs raise
    last = event_json(failure[-2])
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"]["code"] == "upstream_error"
    assert _types(events + failure[:-1])[0] == "response.created"


def test_fixtures_present() -> None:
    assert (FIXTURES / "openai_stream_tool_calls.sse").is_file()
