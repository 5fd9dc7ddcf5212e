"""Bedrock Converse -> OpenAI chat: recorded responses and streams, event by event."""

from __future__ import annotations

from typing import Any

import pytest
from provider_support import fixture_json

from tollway.translate.base import event_json, sse
from tollway.translate.openai_to_bedrock import OpenAIChatToBedrock

# ------------------------------------------------------------------------------ responses


def respond(name: str) -> dict[str, Any]:
    result: dict[str, Any] = OpenAIChatToBedrock({"model": "chat-model"}).response(
        fixture_json(name)
    )
    return result


def test_text_response() -> None:
    out = respond("bedrock/converse.json")
    assert out["id"].startswith("chatcmpl-")
    assert out["object"] == "chat.completion"
    assert out["model"] == "chat-model"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris is the capital of France.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {
        "prompt_tokens": 1220,
        "completion_tokens": 9,
        "total_tokens": 1229,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }


def test_tool_use_response_keeps_ids() -> None:
    (choice,) = respond("bedrock/converse_tools.json")["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll look that up."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
        }
    ]


def test_tool_use_replays_into_the_next_request() -> None:
    message = respond("bedrock/converse_tools.json")["choices"][0]["message"]
    original = fixture_json("bedrock/converse_tools.json")["output"]["message"]
    history = [{"role": "user", "content": "weather?"}, message]
    tool = {"type": "function", "function": {"name": "get_weather"}}
    body = {"model": "m", "messages": history, "tools": [tool]}
    assert OpenAIChatToBedrock(body).request("amazon.nova-pro-v1:0")["messages"][1] == original


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(reason: str, finish: str) -> None:
    body = fixture_json("bedrock/converse.json")
    body["stopReason"] = reason
    out = OpenAIChatToBedrock({"model": "m"}).response(body)
    assert out["choices"][0]["finish_reason"] == finish


# -------------------------------------------------------------------------------- streams


def events(name: str) -> list[bytes]:
    """A recorded stream as the provider hands it on: synthetic SSE events."""
    return [sse(payload, event=kind) for kind, payload in fixture_json(name)]


def run(name: str, include_usage: bool) -> list[Any]:
    body: dict[str, Any] = {"model": "chat-model", "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    stream = OpenAIChatToBedrock(body).stream()
    out: list[bytes] = []
    for event in events(name):
        out.extend(stream.feed(event))
    out.extend(stream.finish())
    assert stream.finish() == []
    return [event_json(e) if b"[DONE]" not in e else "[DONE]" for e in out]


def test_text_stream_event_by_event() -> None:
    stream = OpenAIChatToBedrock({"model": "chat-model"}).stream()
    start, delta, _, stop_block, stop, metadata = events("bedrock/stream_text.json")
    (chunk,) = [event_json(e) for e in stream.feed(start)]
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["model"] == "chat-model"
    assert chunk["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    (chunk,) = [event_json(e) for e in stream.feed(delta)]
    assert chunk["choices"][0]["delta"] == {"content": "Paris"}
    assert stream.feed(stop_block) == []
    (chunk,) = [event_json(e) for e in stream.feed(stop)]
    assert chunk["choices"][0]["finish_reason"] == "stop"
    assert chunk["choices"][0]["delta"] == {}
    assert stream.feed(metadata) == [b"data: [DONE]\n\n"]
    assert stream.finish() == []


def test_text_stream_with_usage_when_asked() -> None:
    chunks = run("bedrock/stream_text.json", include_usage=True)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 6,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert all(c["usage"] is None for c in chunks[:-2])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    assert text == "Paris is the capital."


def test_tool_stream_keeps_ids_and_streams_arguments() -> None:
    chunks = run("bedrock/stream_tools.json", include_usage=True)
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert deltas[:2] == [{"role": "assistant", "content": ""}, {"content": "Checking."}]
    assert deltas[2] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "tooluse_Qm9vc3RlZEJ5QmVkcm9jaw",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]]
    assert "".join(fragments) == '{"city": "Paris"}'
    assert all(d["tool_calls"][0]["index"] == 0 for d in deltas[3:5])
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["usage"]["prompt_tokens"] == 400  # 300 + 100 cache reads
    assert chunks[-2]["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}


def test_stream_ending_without_metadata_still_closes() -> None:
    stream = OpenAIChatToBedrock({"model": "m"}).stream()
    start, delta = events("bedrock/stream_text.json")[:2]
    stream.feed(start)
    stream.feed(delta)
    finish, done = stream.finish()
    assert event_json(finish)["choices"][0]["finish_reason"] == "stop"
    assert done == b"data: [DONE]\n\n"


def test_unknown_and_reasoning_events_are_ignored() -> None:
    stream = OpenAIChatToBedrock({"model": "m"}).stream()
    stream.feed(events("bedrock/stream_text.json")[0])
    reasoning = {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}
    assert stream.feed(sse(reasoning, event="contentBlockDelta")) == []
    assert stream.feed(sse({"x": 1}, event="somethingNew")) == []
    assert stream.feed(b"event: metadata\ndata: not json\n\n") == []
