"""The response model and finish reasons read from answers on their way to the client."""

from __future__ import annotations

import orjson

from fake_upstream import (
    PIECES,
    anthropic_events,
    anthropic_message,
    chat_completion,
    chat_events,
    response_object,
    responses_events,
)
from tollway.telemetry.tracing_answer import MAX_REASONS, Answer


def seen(*chunks: bytes) -> Answer:
    """An Answer shown ``chunks`` in order."""
    answer = Answer()
    for chunk in chunks:
        answer.see(chunk)
    return answer


def test_whole_answers() -> None:
    chat = seen(orjson.dumps(chat_completion("gpt-4o-2024-08-06")))
    assert (chat.model, chat.finish_reasons) == ("gpt-4o-2024-08-06", ["stop"])
    message = seen(orjson.dumps(anthropic_message("claude-sonnet-4-5")))
    assert (message.model, message.finish_reasons) == ("claude-sonnet-4-5", ["end_turn"])
    response = seen(orjson.dumps(response_object("gpt-5")))
    assert (response.model, response.finish_reasons) == ("gpt-5", [])


def test_streams_event_by_event() -> None:
    body = {"stream_options": {"include_usage": True}}
    chat = seen(*chat_events("gpt-4o-mini", body, PIECES))
    assert (chat.model, chat.finish_reasons) == ("gpt-4o-mini", ["stop"])
    messages = seen(*anthropic_events("claude-haiku", PIECES))
    assert (messages.model, messages.finish_reasons) == ("claude-haiku", ["end_turn"])
    responses = seen(*responses_events("gpt-5", PIECES))
    assert responses.model == "gpt-5"


def test_one_reason_per_choice_within_a_bound() -> None:
    body = chat_completion("m")
    body["choices"] = [{**body["choices"][0], "index": i} for i in range(40)]
    body["choices"][1]["finish_reason"] = "length"
    assert seen(orjson.dumps(body)).finish_reasons[:3] == ["stop", "length", "stop"]
    assert len(seen(orjson.dumps(body)).finish_reasons) == MAX_REASONS


def test_generated_text_never_becomes_a_value() -> None:
    # Text that spells the keys out is inside a JSON string: its quotes are escaped.
    text = 'say "model": "leaked-model" and "finish_reason": "leaked"'
    body = chat_completion("real-model", text=text)
    answer = seen(orjson.dumps(body))
    assert (answer.model, answer.finish_reasons) == ("real-model", ["stop"])
    # A tool's input is a JSON object: a key of the same name there is syntax, but its
    # value is kept only as one of the APIs' own reasons.
    tool = anthropic_message("claude")
    tool["content"] = [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"stop_reason": "secretword"}}
    ]
    assert seen(orjson.dumps(tool)).finish_reasons == ["other", "end_turn"]
