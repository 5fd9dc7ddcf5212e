"""OpenAI chat and completions answers replayed the other way: the official SDK rebuilds
the same completion from the replay as from the original."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cache_support import (
    chat_streamed,
    chat_whole,
    completion_streamed,
    completion_whole,
    datas,
    dumps,
    load_events,
    load_json,
    split,
    translated_body,
    translated_stream,
)
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tollway.cache.entry import Entry, from_body, from_stream
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage
from tollway.translate.openai_to_anthropic import OpenAIChatToAnthropic

USAGE = Usage(input_tokens=31, output_tokens=7, cache_read_tokens=3, reasoning_tokens=2)
WITH_USAGE: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
PLAIN: dict[str, Any] = {"stream": True}
CHAT_REQUEST = {"model": "claude-x", "messages": [{"role": "user", "content": "Hi"}]}


def bodies() -> list[dict[str, Any]]:
    """Whole chat answers: OpenAI's own, several choices, and translated ones."""
    native = [
        load_json(name)
        for name in (
            "openai_chat_completion_text.json",
            "openai_chat_completion_tool_calls.json",
            "openai_chat_completion_reasoning.json",
            "chat_completion_choices.json",
        )
    ]
    translated = [
        translated_body(OpenAIChatToAnthropic, CHAT_REQUEST, load_json(name))
        for name in ("anthropic_message_text.json", "anthropic_message_tool_use.json")
    ]
    return native + translated


def streams() -> list[list[bytes]]:
    """Chunk streams as clients received them: passed through, and translated."""
    native = [
        load_events(name)
        for name in (
            "openai_stream_text.sse",
            "openai_stream_tool_calls.sse",
            "openai_stream_reasoning.sse",
            "openai_stream_interleaved.sse",
        )
    ]
    translated = [
        translated_stream(OpenAIChatToAnthropic, {**CHAT_REQUEST, **WITH_USAGE}, load_events(name))
        for name in ("anthropic_stream_text.sse", "anthropic_stream_tool_use.sse")
    ]
    return native + translated


def whole_entry(body: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS) -> Entry:
    entry = from_body(endpoint, dumps(body), USAGE)
    assert entry is not None
    return entry


def stream_entry(events: list[bytes], endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS) -> Entry:
    entry = from_stream(endpoint, events, USAGE)
    assert entry is not None
    return entry


@pytest.mark.parametrize("body", bodies(), ids=lambda b: str(b.get("id"))[:24])
@pytest.mark.parametrize("payload", [WITH_USAGE, PLAIN], ids=["usage", "plain"])
def test_whole_answer_replays_as_a_faithful_stream(
    body: dict[str, Any], payload: dict[str, Any]
) -> None:
    events = whole_entry(body).stream(payload)
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [ChatCompletionChunk.model_validate(data) for data in datas(events)]
    assert {c.id for c in chunks} == {body["id"]} and {c.model for c in chunks} == {body["model"]}
    assert {c.created for c in chunks} == {body["created"]}
    replayed = chat_streamed(events)
    original = chat_whole(dumps(body))
    if payload is PLAIN:
        # Without include_usage a stream has no usage: the rest is the same.
        assert all("usage" not in data for data in datas(events))
        assert replayed.pop("usage") is None
        original.pop("usage")
    else:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert replayed == original


@pytest.mark.parametrize("events", streams(), ids=lambda e: str(len(e)))
def test_recorded_stream_replays_as_a_faithful_whole_body(events: list[bytes]) -> None:
    entry = stream_entry(events)
    body = entry.whole({})
    ChatCompletion.model_validate_json(body)  # strictly the API's shape
    assert chat_whole(body) == chat_streamed(events)


@pytest.mark.parametrize("events", streams(), ids=lambda e: str(len(e)))
def test_recorded_stream_replays_as_itself(events: list[bytes]) -> None:
    entry = stream_entry(events)
    assert entry.stream(WITH_USAGE) == events  # every one of these carries usage
    # A client that did not ask for usage gets the stream without it, as the relay
    # sends it when the gateway itself asked the upstream for usage (a provider that
    # puts usage in its last content chunk keeps it there).
    plain = entry.stream(PLAIN)
    assert all(data.get("usage") is None for data in datas(plain) if not data.get("choices"))
    assert all(data.get("usage", 1) is not None for data in datas(plain))
    replayed = chat_streamed(plain)
    expected = chat_streamed(events)
    assert replayed.pop("usage") in (None, expected["usage"])
    expected.pop("usage")
    assert replayed == expected


def test_a_stream_recorded_without_usage_gets_a_usage_chunk_from_the_entry() -> None:
    events = stream_entry(load_events("openai_stream_text.sse")).stream(PLAIN)
    entry = stream_entry(events)
    assert entry.stream(PLAIN) == events
    with_usage = entry.stream(WITH_USAGE)
    assert len(with_usage) == len(events) + 1
    last = ChatCompletionChunk.model_validate(datas(with_usage)[-1])
    assert last.choices == [] and last.id == datas(events)[0]["id"]
    assert last.usage is not None and last.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 31,
        "completion_tokens": 7,
        "total_tokens": 38,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    # The whole form carries the same counts.
    assert orjson.loads(entry.whole({}))["usage"] == last.usage.model_dump(exclude_none=True)


def test_several_choices_keep_their_order_and_logprobs() -> None:
    body = load_json("chat_completion_choices.json")
    events = whole_entry(body).stream(PLAIN)
    again = orjson.loads(stream_entry(events).whole({}))
    assert [c["index"] for c in again["choices"]] == [0, 1]
    for mine, original in zip(again["choices"], body["choices"], strict=True):
        assert mine["logprobs"] == original["logprobs"]
        assert mine["message"] == original["message"]
        assert mine["finish_reason"] == original["finish_reason"]


# ------------------------------------------------------------------------- completions


def _completion_chunk(text: str | None, finish: str | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": "cmpl-9",
        "object": "text_completion",
        "created": 1755440300,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }
    if text is None:
        chunk["choices"] = []
        chunk["usage"] = {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


COMPLETION_STREAM = b"".join(
    [
        _completion_chunk("\n\nBlue"),
        _completion_chunk(" light"),
        _completion_chunk(" scatters.", "stop"),
        _completion_chunk(None),
        b"data: [DONE]\n\n",
    ]
)


def texts(chunks: list[Any]) -> dict[int, tuple[str, Any]]:
    """Per choice index: the concatenated text and the last finish reason."""
    out: dict[int, tuple[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            text, finish = out.get(choice.index, ("", None))
            out[choice.index] = (text + choice.text, choice.finish_reason or finish)
    return out


@pytest.mark.parametrize("payload", [WITH_USAGE, PLAIN], ids=["usage", "plain"])
def test_completion_replays_as_a_faithful_stream(payload: dict[str, Any]) -> None:
    body = load_json("completion_text.json")
    events = whole_entry(body, Endpoint.COMPLETIONS).stream(payload)
    for data in datas(events):
        Completion.model_validate(data)
    chunks = completion_streamed(events)
    assert texts(chunks) == {c["index"]: (c["text"], c["finish_reason"]) for c in body["choices"]}
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage == ([Completion.model_validate(body).usage] if payload is WITH_USAGE else [])


def test_completion_stream_replays_as_a_faithful_whole_body() -> None:
    events = split(COMPLETION_STREAM)
    entry = stream_entry(events, Endpoint.COMPLETIONS)
    whole = completion_whole(entry.whole({}))
    assert whole["choices"] == [
        {"text": "\n\nBlue light scatters.", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert whole["usage"]["total_tokens"] == 11 and whole["id"] == "cmpl-9"
    assert entry.stream(WITH_USAGE) == events
    plain = entry.stream(PLAIN)
    assert texts(completion_streamed(plain)) == texts(completion_streamed(events))
    assert all(c.usage is None for c in completion_streamed(plain))


def test_completion_logprobs_survive_both_ways() -> None:
    body = load_json("completion_text.json")
    events = whole_entry(body, Endpoint.COMPLETIONS).stream(PLAIN)
    again = orjson.loads(stream_entry(events, Endpoint.COMPLETIONS).whole({}))
    assert again["choices"] == body["choices"]
