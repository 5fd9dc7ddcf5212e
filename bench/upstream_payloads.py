"""What the fake upstream answers: OpenAI chat, OpenAI Responses and Anthropic messages,
whole or as SSE events, rendered once per model and kept as bytes.

The answer is always the same short sentence with fixed token counts, so that a proxy's
metering has real usage to read and every run does the same work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is a project dependency
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


CREATED = 1741569952
ANSWER_PIECES = ["The", " capital", " of", " France", " is", " Paris", "."]
ANSWER = "".join(ANSWER_PIECES)
PROMPT_TOKENS = 57
COMPLETION_TOKENS = len(ANSWER_PIECES)


# --------------------------------------------------------------------------- payloads


def openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def openai_completion(model: str) -> bytes:
    return dumps(
        {
            "id": "chatcmpl-BenchFakeUpstream0000000001",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": openai_usage(),
            "system_fingerprint": "fp_bench0001",
        }
    )


def openai_stream_events(model: str, include_usage: bool) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": "chatcmpl-BenchFakeUpstream0000000001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench0001",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    last = len(ANSWER_PIECES) - 1
    for i, piece in enumerate(ANSWER_PIECES):
        chunks.append(chunk({"content": piece}, "stop" if i == last else None))
    if include_usage:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = openai_usage()
        chunks.append(final)
    events = [b"data: " + dumps(c) + b"\n\n" for c in chunks]
    events.append(b"data: [DONE]\n\n")
    return events


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_message(model: str) -> bytes:
    return dumps(
        {
            "id": "msg_01BenchFakeUpstream000001",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": ANSWER}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(COMPLETION_TOKENS),
        }
    )


def anthropic_stream_events(model: str) -> list[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"

    message: dict[str, Any] = {
        "id": "msg_01BenchFakeUpstream000001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(1),
    }
    events = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event("ping", {"type": "ping"}),
    ]
    for piece in ANSWER_PIECES:
        delta = {"type": "text_delta", "text": piece}
        events.append(
            event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        )
    events += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
    return events


def _responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": COMPLETION_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def _response_object(model: str, status: str, text: str | None) -> dict[str, Any]:
    output = []
    if text is not None:
        part = {"type": "output_text", "text": text, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": "msg_BenchFakeUpstream0001",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    return {
        "id": "resp_BenchFakeUpstream0000000001",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": model,
        "output": output,
        "usage": _responses_usage() if status == "completed" else None,
    }


def responses_object(model: str) -> bytes:
    """A completed OpenAI Responses object (POST /v1/responses)."""
    return dumps(_response_object(model, "completed", ANSWER))


def responses_stream_events(model: str) -> list[bytes]:
    """The Responses stream for the same answer: created, text deltas, completed."""

    def event(data: dict[str, Any]) -> bytes:
        kind: str = data["type"]
        return b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n"

    events = [
        event(
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": _response_object(model, "in_progress", None),
            }
        )
    ]
    for i, piece in enumerate(ANSWER_PIECES, start=1):
        delta = {
            "type": "response.output_text.delta",
            "sequence_number": i,
            "item_id": "msg_BenchFakeUpstream0001",
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
        }
        events.append(event(delta))
    done = {
        "type": "response.completed",
        "sequence_number": len(ANSWER_PIECES) + 1,
        "response": _response_object(model, "completed", ANSWER),
    }
    events.append(event(done))
    return events
