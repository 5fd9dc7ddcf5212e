"""OpenAI Responses answers replayed the other way: the official SDK's ``responses``
stream helper accepts every replayed event and ends with the same response."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cache_support import (
    datas,
    dumps,
    load_events,
    load_json,
    response_stream_events,
    response_streamed,
    response_whole,
    translated_body,
    translated_stream,
)
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tollway.cache.entry import Entry, from_body, from_stream
from tollway.cache.responses_stream import ECHOED
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage
from tollway.translate.responses_to_openai import ResponsesToOpenAIChat

USAGE = Usage(input_tokens=63, output_tokens=147)
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
REQUEST: dict[str, Any] = {
    "model": "claude-x",
    "input": "Weather in Paris?",
    "stream": True,
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
              {"type": "function", "name": "get_time", "parameters": {"type": "object"}}],
}  # fmt: skip
NATIVE = ["responses_agent.json", "responses_refusal_incomplete.json"]


def translated_bodies() -> list[dict[str, Any]]:
    """What a Responses client of a chat-completions model gets."""
    return [
        translated_body(ResponsesToOpenAIChat, REQUEST, load_json(name))
        for name in ("openai_chat_completion_text.json", "openai_chat_completion_tool_calls.json")
    ]


def streams() -> list[list[bytes]]:
    """Responses streams as clients received them: OpenAI's, and translated."""
    translated = [
        translated_stream(ResponsesToOpenAIChat, REQUEST, load_events(name))
        for name in (
            "openai_stream_text.sse",
            "openai_stream_tool_calls.sse",
            "openai_stream_reasoning.sse",
        )
    ]
    return [load_events("responses_stream_tool_call.sse"), *translated]


def asked(body: dict[str, Any]) -> dict[str, Any]:
    """The request fields of the caller ``body`` answered, that a response echoes."""
    return {name: body[name] for name in ECHOED if body.get(name) is not None}


def entry_of(body: dict[str, Any]) -> Entry:
    entry = from_body(Endpoint.RESPONSES, dumps(body), USAGE)
    assert entry is not None
    return entry


def check_sequence(events: list[bytes]) -> None:
    """Each event named by its type, numbered from 0."""
    for number, (event, data) in enumerate(zip(events, datas(events), strict=True)):
        assert event.startswith(b"event: " + data["type"].encode() + b"\n")
        assert data["sequence_number"] == number


@pytest.mark.parametrize("name", NATIVE)
def test_whole_response_replays_as_valid_events(name: str) -> None:
    body = load_json(name)
    events = entry_of(body).stream(asked(body))
    check_sequence(events)
    for data in datas(events):
        EVENTS.validate_python(data)  # strictly the API's event shapes
    kinds = [data["type"] for data in datas(events)]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == f"response.{body['status']}"
    assert datas(events)[-1]["response"] == body
    created = datas(events)[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None and created["id"] == body["id"]


def test_whole_response_replays_as_a_faithful_stream() -> None:
    body = load_json("responses_agent.json")
    final, seen = response_streamed(entry_of(body).stream(asked(body)))
    assert final == response_whole(dumps(body))
    # What a client reads as it streams adds up to the same output.
    texts = [e.text for e in seen if e.type == "response.output_text.done"]
    assert texts == [body["output"][2]["content"][0]["text"]]
    arguments = [e.arguments for e in seen if e.type == "response.function_call_arguments.done"]
    assert arguments == [body["output"][3]["arguments"]]
    summaries = [e.text for e in seen if e.type == "response.reasoning_summary_text.done"]
    assert summaries == [part["text"] for part in body["output"][0]["summary"]]
    added = [e.item.type for e in seen if e.type == "response.output_item.added"]
    assert added == [item["type"] for item in body["output"]]


def test_incomplete_response_replays_as_the_same_incomplete_event() -> None:
    body = load_json("responses_refusal_incomplete.json")
    events = entry_of(body).stream(asked(body))
    with pytest.raises(RuntimeError, match=r"response\.completed"):
        response_streamed(events)  # as from the API: no final response when incomplete
    seen = response_stream_events(events)
    assert seen[-1].type == "response.incomplete"
    assert seen[-1].response.model_dump() == response_whole(dumps(body), parsed=False)
    refusals = [e.refusal for e in seen if e.type == "response.refusal.done"]
    assert refusals == ["I can't help with that part."]


@pytest.mark.parametrize("body", translated_bodies(), ids=["text", "tools"])
def test_translated_response_replays_as_a_faithful_stream(body: dict[str, Any]) -> None:
    final, _ = response_streamed(entry_of(body).stream(asked(body)))
    assert final == response_whole(dumps(body))


@pytest.mark.parametrize("events", streams(), ids=["native", "text", "tools", "reasoning"])
def test_recorded_stream_replays_as_a_faithful_whole_body(events: list[bytes]) -> None:
    entry = from_stream(Endpoint.RESPONSES, events, USAGE)
    assert entry is not None
    first = datas(events)[0]["response"]
    whole = entry.whole(asked(first))
    final, _ = response_streamed(events)
    assert response_whole(whole) == final
    assert entry.stream(asked(first)) == events  # streamed again exactly as recorded


def test_native_stream_whole_body_validates_and_round_trips() -> None:
    events = load_events("responses_stream_tool_call.sse")
    entry = from_stream(Endpoint.RESPONSES, events, USAGE)
    assert entry is not None
    body = orjson.loads(entry.whole({}))
    Response.model_validate(body)
    assert [item["type"] for item in body["output"]] == ["reasoning", "message", "function_call"]
    again, _ = response_streamed(entry_of(body).stream(asked(body)))
    assert again == response_streamed(events)[0]


def test_output_is_rebuilt_when_the_final_event_leaves_it_out() -> None:
    events = load_events("responses_stream_tool_call.sse")
    final = datas(events)[-1]
    full = final["response"]["output"]
    final["response"]["output"] = None
    cut = [*events[:-1], b"event: response.completed\ndata: " + orjson.dumps(final) + b"\n\n"]
    entry = from_stream(Endpoint.RESPONSES, cut, USAGE)
    assert entry is not None
    assert orjson.loads(entry.whole({}))["output"] == full


def test_echoed_request_fields_are_the_callers_own() -> None:
    body = load_json("responses_agent.json")
    entry = entry_of(body)
    original = {
        "metadata": {"trip": "42"},
        "safety_identifier": "user-7f3a",
        "prompt_cache_key": "trip-42",
    }
    # The same caller fields: the stored bytes, untouched.
    assert entry.whole(original) is entry.body
    other = {"metadata": {"trip": "7"}, "user": "someone-else"}
    whole = orjson.loads(entry.whole(other))
    assert whole["metadata"] == {"trip": "7"} and whole["user"] == "someone-else"
    assert whole["safety_identifier"] is None and whole["prompt_cache_key"] is None
    assert {k: v for k, v in whole.items() if k not in {*original, "user"}} == {
        k: v for k, v in body.items() if k not in {*original, "user"}
    }
    for data in datas(entry.stream(other)):
        if "response" in data:
            assert data["response"]["metadata"] == {"trip": "7"}
            assert data["response"]["safety_identifier"] is None
    # Recorded streams too: only their lifecycle events change.
    events = load_events("responses_stream_tool_call.sse")
    recorded = from_stream(Endpoint.RESPONSES, events, USAGE)
    assert recorded is not None
    assert recorded.stream({}) == events
    echoed = recorded.stream({"metadata": {"a": "b"}, "user": "u-2"})
    changed = [i for i, (a, b) in enumerate(zip(events, echoed, strict=True)) if a != b]
    assert changed == [0, 1, len(events) - 1]
    assert datas(echoed)[-1]["response"]["user"] == "u-2"
    assert orjson.loads(recorded.whole({"metadata": {"a": "b"}}))["metadata"] == {"a": "b"}


def test_failed_streams_are_not_entries() -> None:
    events = load_events("responses_stream_tool_call.sse")
    final = datas(events)[-1]
    final["type"] = "response.failed"
    final["response"]["status"] = "failed"
    final["response"]["error"] = {"code": "server_error", "message": "boom"}
    failed = [*events[:-1], b"event: response.failed\ndata: " + orjson.dumps(final) + b"\n\n"]
    assert from_stream(Endpoint.RESPONSES, failed, USAGE) is None
    error = b'event: error\ndata: {"type":"error","code":"server_error","message":"x"}\n\n'
    assert from_stream(Endpoint.RESPONSES, [*events[:5], error, *events[5:]], USAGE) is None
