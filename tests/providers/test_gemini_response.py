"""Gemini -> OpenAI chat: recorded responses and streams, event by event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from provider_support import fixture_bytes, fixture_json

from tollway.sse import EventSplitter
from tollway.translate.base import event_json
from tollway.translate.openai_to_gemini import OpenAIChatToGemini

# ------------------------------------------------------------------------------ responses


def respond(name: str) -> dict[str, Any]:
    result: dict[str, Any] = OpenAIChatToGemini({"model": "chat-model"}).response(
        fixture_json(name)
    )
    return result


def test_text_response() -> None:
    out = respond("gemini/generate_content.json")
    assert out["id"] == "chatcmpl-mB1vaMXfBPGgz7IPx5qM4QI"
    assert out["object"] == "chat.completion"
    assert out["model"] == "gemini-2.5-flash"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The capital of France is Paris.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 58,
        "total_tokens": 178,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }


def test_tool_call_response_synthesizes_ids_and_keeps_signatures() -> None:
    out = respond("gemini/generate_content_tools.json")
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
            "extra_content": {
                "google": {
                    "thought_signature": "CiQBVKhc7hYd3Q0x8kqGJm2pXwOWkHqz2a0Qe8zjF1XcJ4b5Ug=="
                }
            },
        },
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"zone":"Europe/Paris"}'},
        },
    ]


def test_tool_calls_replay_into_the_next_request() -> None:
    """The assistant message a client gets back translates to the parts Gemini sent."""
    message = respond("gemini/generate_content_tools.json")["choices"][0]["message"]
    original = fixture_json("gemini/generate_content_tools.json")["candidates"][0]["content"]
    history = [{"role": "user", "content": "weather and time?"}, message]
    body = {"model": "m", "messages": history}
    contents = OpenAIChatToGemini(body).request("gemini-3-pro-preview")["contents"]
    assert contents[1] == original


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    body = fixture_json("gemini/generate_content.json")
    body["candidates"][0]["finishReason"] = reason
    out = OpenAIChatToGemini({"model": "m"}).response(body)
    assert out["choices"][0]["finish_reason"] == finish


def test_blocked_prompt_is_an_empty_content_filter_choice() -> None:
    out = respond("gemini/blocked_prompt.json")
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    assert out["usage"]["prompt_tokens"] == 9


def test_several_candidates_become_several_choices() -> None:
    body = fixture_json("gemini/generate_content.json")
    second = {
        "content": {"parts": [{"text": "Paris."}], "role": "model"},
        "finishReason": "MAX_TOKENS",
        "index": 1,
    }
    body["candidates"].append(second)
    choices = OpenAIChatToGemini({"model": "m"}).response(body)["choices"]
    assert [(c["index"], c["finish_reason"]) for c in choices] == [(0, "stop"), (1, "length")]


# -------------------------------------------------------------------------------- streams


def upstream_events(name: str) -> list[bytes]:
    splitter = EventSplitter()
    events = splitter.feed(fixture_bytes(name))
    assert not splitter.rest()
    return events


def run_stream(name: str, include_usage: bool) -> list[Any]:
    body: dict[str, Any] = {"model": "chat-model", "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    stream = OpenAIChatToGemini(body).stream()
    out: list[bytes] = []
    for event in upstream_events(name):
        out.extend(stream.feed(event))
    out.extend(stream.finish())
    assert stream.finish() == []  # finish is idempotent
    for event in out:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    return [event_json(event) if b"[DONE]" not in event else "[DONE]" for event in out]


def test_text_stream_event_by_event() -> None:
    stream = OpenAIChatToGemini({"model": "chat-model", "stream": True}).stream()
    first, second, third = upstream_events("gemini/stream_text.sse")
    (chunk,) = [event_json(e) for e in stream.feed(first)]
    assert chunk["id"] == "chatcmpl-r3sPaKm1EdC1z7IPq8mT0Q8"
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["model"] == "gemini-2.0-flash"
    assert "usage" not in chunk
    assert chunk["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "The capital"},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    (chunk,) = [event_json(e) for e in stream.feed(second)]
    assert chunk["choices"][0]["delta"] == {"content": " of France is"}
    text, finish = [event_json(e) for e in stream.feed(third)]
    assert text["choices"][0]["delta"] == {"content": " Paris."}
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert stream.finish() == [b"data: [DONE]\n\n"]


def test_text_stream_with_usage_when_asked() -> None:
    chunks = run_stream("gemini/stream_text.sse", include_usage=True)
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert all(chunk["usage"] is None for chunk in chunks[:-2])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    assert text == "The capital of France is Paris."


def test_tool_call_stream() -> None:
    chunks = run_stream("gemini/stream_tools.sse", include_usage=False)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Let me check."}
    calls = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert calls == [
        {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            "extra_content": {"google": {"thought_signature": "CiQBVKhc7hYd3Q0x"}},
        },
        {
            "index": 1,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"zone":"Europe/Paris"}'},
        },
    ]
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[3:] == ["[DONE]"]


def test_tool_call_ids_keep_counting_across_chunks() -> None:
    stream = OpenAIChatToGemini({"model": "m"}).stream()

    def chunk(name: str, finish: str | None = None) -> bytes:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"functionCall": {"name": name, "args": {}}}], "role": "model"},
            "index": 0,
        }
        if finish:
            candidate["finishReason"] = finish
        return b"data: " + orjson.dumps({"candidates": [candidate]}) + b"\n\n"

    first = [event_json(e) for e in stream.feed(chunk("a"))]
    second = [event_json(e) for e in stream.feed(chunk("b", "STOP"))]
    assert first[0]["choices"][0]["delta"]["content"] is None
    assert first[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_0"
    call = second[0]["choices"][0]["delta"]["tool_calls"][0]
    assert (call["index"], call["id"]) == (1, "call_1")
    assert second[1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_of_a_blocked_prompt() -> None:
    stream = OpenAIChatToGemini({"model": "m"}).stream()
    blocked = b"data: " + orjson.dumps(fixture_json("gemini/blocked_prompt.json")) + b"\n\n"
    (chunk,) = [event_json(e) for e in stream.feed(blocked)]
    assert chunk["choices"][0]["finish_reason"] == "content_filter"


def test_stream_ignores_comments_and_non_json() -> None:
    stream = OpenAIChatToGemini({"model": "m"}).stream()
    assert stream.feed(b": keep-alive\n\n") == []
    assert stream.feed(b"data: not json\n\n") == []
