"""What the real OpenAI and Anthropic APIs send: bodies with usage, and SSE events.

Shapes follow the providers' references (OpenAI: chat completions, completions,
embeddings, responses; Anthropic: messages and count_tokens) closely enough that the
official SDKs parse them, including their stream helpers.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

CREATED = 1_741_569_952
PIECES = ["Hello", " from", " the", " fake", " upstream", "."]
TEXT = "".join(PIECES)
PROMPT_TOKENS = 17
COMPLETION_TOKENS = len(PIECES)
COUNT_TOKENS = 42
EMBEDDING_DIMS = 8

OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def openai_usage() -> dict[str, Any]:
    """A chat/completions usage object."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def responses_usage() -> dict[str, Any]:
    """A Responses API usage object."""
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": COMPLETION_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def anthropic_usage(output_tokens: int = COMPLETION_TOKENS) -> dict[str, Any]:
    """A Messages API usage object."""
    return {
        "input_tokens": PROMPT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def chat_completion(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete chat.completion object."""
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": openai_usage(),
        "system_fingerprint": "fp_fake",
    }


def text_completion(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete legacy text_completion object."""
    return {
        "id": "cmpl-fake0001",
        "object": "text_completion",
        "created": CREATED,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def embedding_vector(index: int) -> list[float]:
    """A deterministic small vector (exactly representable in float32)."""
    return [round((index + 1) * 0.125 + i * 0.25, 3) for i in range(EMBEDDING_DIMS)]


def embeddings(model: str, body: Any) -> dict[str, Any]:
    """An embeddings list, base64-encoded float32 when the client asked for it."""
    inputs = body.get("input") if isinstance(body, dict) else None
    count = len(inputs) if isinstance(inputs, list) else 1
    as_base64 = isinstance(body, dict) and body.get("encoding_format") == "base64"
    data = []
    for index in range(count):
        vector = embedding_vector(index)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
    }


def _response_message(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_fake0001",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response_object(model: str, status: str = "completed", text: str = TEXT) -> dict[str, Any]:
    """A Responses API ``response`` object."""
    done = status == "completed"
    return {
        "id": "resp_fake0001",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [_response_message(text)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": responses_usage() if done else None,
        "user": None,
        "metadata": {},
    }


def anthropic_message(model: str, text: str = TEXT) -> dict[str, Any]:
    """A complete Messages API message."""
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def chat_events(model: str, body: Any, pieces: list[str]) -> list[bytes]:
    """Chat completion chunks, a usage chunk when asked, then ``[DONE]``."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(choices: list[Any]) -> bytes:
        payload: dict[str, Any] = {
            "id": "chatcmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if with_usage:
            payload["usage"] = None
        return _data(payload)

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [chunk([choice({"content": piece})]) for piece in pieces]
    events.append(chunk([choice({}, "stop")]))
    if with_usage:
        usage = openai_usage()
        usage["completion_tokens"] = len(pieces)
        usage["total_tokens"] = PROMPT_TOKENS + len(pieces)
        events.append(
            _data(
                {
                    "id": "chatcmpl-fake0001",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return events


def completion_events(model: str, body: Any, pieces: list[str]) -> list[bytes]:
    """Legacy completion chunks, a usage chunk when asked, then ``[DONE]``."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(text: str, finish: str | None) -> bytes:
        return _data(
            {
                "id": "cmpl-fake0001",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            }
        )

    events = [chunk(piece, None) for piece in pieces]
    events.append(chunk("", "stop"))
    if with_usage:
        events.append(
            _data(
                {
                    "id": "cmpl-fake0001",
                    "object": "text_completion",
                    "created": CREATED,
                    "model": model,
                    "choices": [],
                    "usage": text_completion(model)["usage"],
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return events


def responses_events(model: str, pieces: list[str]) -> list[bytes]:
    """Responses API events from ``response.created`` to ``response.completed``."""
    text = "".join(pieces)
    sequence = iter(range(10_000))
    item = _response_message("", status="in_progress")
    item["content"] = []
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}

    def event(kind: str, **fields: Any) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

    where = {"item_id": "msg_fake0001", "output_index": 0, "content_index": 0}
    events = [
        event("response.created", response=response_object(model, "in_progress")),
        event("response.in_progress", response=response_object(model, "in_progress")),
        event("response.output_item.added", output_index=0, item=item),
        event("response.content_part.added", part=part, **where),
    ]
    events += [
        event("response.output_text.delta", delta=piece, logprobs=[], **where) for piece in pieces
    ]
    events += [
        event("response.output_text.done", text=text, logprobs=[], **where),
        event("response.content_part.done", part={**part, "text": text}, **where),
        event("response.output_item.done", output_index=0, item=_response_message(text)),
        event("response.completed", response=response_object(model, "completed", text)),
    ]
    return events


def anthropic_events(model: str, pieces: list[str]) -> list[bytes]:
    """Messages API events from ``message_start`` to ``message_stop``."""
    start = anthropic_message(model)
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = anthropic_usage(output_tokens=1)
    events = [
        _event("message_start", {"type": "message_start", "message": start}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _event("ping", {"type": "ping"}),
    ]
    events += [
        _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in pieces
    ]
    events += [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return events


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    """An error body shaped like the real API behind ``path``."""
    if path.startswith("/v1/messages"):
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "r1"}
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def json_body(path: str, model: str, body: Any, text: str) -> Any:
    """The non-streamed answer for ``path``."""
    if path == "/v1/chat/completions":
        return chat_completion(model, text)
    if path == "/v1/completions":
        return text_completion(model, text)
    if path == "/v1/embeddings":
        return embeddings(model, body)
    if path == "/v1/responses":
        return response_object(model, text=text)
    if path == "/v1/messages/count_tokens":
        return {"input_tokens": COUNT_TOKENS}
    return anthropic_message(model, text)
