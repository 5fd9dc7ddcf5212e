"""Whole -> stream -> whole is the identity, for answers generated at random (texts with
any characters, tool calls, several choices), and entries survive the codec."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.cache.codec import decode, encode
from tollway.cache.entry import Entry, Tokens, from_body, from_stream
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage

USAGE = Usage(input_tokens=3, output_tokens=4)
text = st.text(max_size=200)
ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=20)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ident, inner, max_size=4),
    max_leaves=10,
)


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A chat.completion with 1-3 choices of text, refusal and tool calls."""
    choices = []
    for index in range(draw(st.integers(1, 3))):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": draw(st.none() | text),
            "refusal": draw(st.none() | text),
        }
        calls = [
            {
                "id": f"call_{draw(ident)}",
                "type": "function",
                "function": {"name": draw(ident), "arguments": draw(text)},
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        if calls:
            message["tool_calls"] = calls
        reason = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
        )
    return {
        "id": f"chatcmpl-{draw(ident)}",
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(ident),
        "choices": choices,
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """An Anthropic message with text, thinking and tool_use blocks."""
    blocks: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "thinking", "tool_use"]))
        if kind == "text":
            blocks.append({"type": "text", "text": draw(text)})
        elif kind == "thinking":
            blocks.append({"type": "thinking", "thinking": draw(text), "signature": draw(text)})
        else:
            arguments = draw(st.dictionaries(ident, json_value, max_size=4))
            blocks.append({"type": "tool_use", "id": f"toolu_{draw(ident)}", "name": draw(ident),
                           "input": arguments})  # fmt: skip
    return {
        "id": f"msg_{draw(ident)}",
        "type": "message",
        "role": "assistant",
        "model": draw(ident),
        "content": blocks,
        "stop_reason": draw(st.sampled_from(["end_turn", "max_tokens", "tool_use"])),
        "stop_sequence": draw(st.none() | text),
        "usage": {"input_tokens": draw(st.integers(0, 10**6)), "output_tokens": 5},
    }


def round_trip(endpoint: Endpoint, body: dict[str, Any], payload: dict[str, Any]) -> Any:
    whole = from_body(endpoint, orjson.dumps(body), USAGE)
    assert whole is not None
    streamed = from_stream(endpoint, whole.stream(payload), USAGE)
    assert streamed is not None
    return orjson.loads(streamed.whole(payload))


@settings(max_examples=150, deadline=None)
@given(chat_bodies(), st.booleans())
def test_chat_whole_stream_whole(body: dict[str, Any], usage: bool) -> None:
    payload = {"stream_options": {"include_usage": True}} if usage else {}
    again = round_trip(Endpoint.CHAT_COMPLETIONS, body, payload)
    if not usage:  # the usage then comes from the entry's own counts
        assert again.pop("usage")["total_tokens"] == 7
        body = {**body}
        body.pop("usage")
    assert again == body


@settings(max_examples=150, deadline=None)
@given(messages())
def test_message_whole_stream_whole(body: dict[str, Any]) -> None:
    assert round_trip(Endpoint.MESSAGES, body, {}) == body


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(Endpoint)),
    st.lists(st.integers(0, 2**40), min_size=6, max_size=6),
    st.booleans(),
    st.floats(0, 2e9),
    st.one_of(st.binary(max_size=3000), st.lists(st.binary(max_size=300), max_size=20)),
    st.integers(100, 599),
    st.text(max_size=40),
)
def test_codec_round_trip_any_entry(
    endpoint: Endpoint,
    counts: list[int],
    estimated: bool,
    created: float,
    data: bytes | list[bytes],
    status: int,
    content_type: str,
) -> None:
    tokens = Tokens._make([*counts, estimated])
    body, events = (data, None) if isinstance(data, bytes) else (None, tuple(data))
    entry = Entry(endpoint, tokens, created, body, events, status, content_type)
    assert decode(encode(entry)) == entry
