"""What the real OpenAI and Anthropic APIs send: bodies with usage, and SSE events.

Shapes follow the providers' references (OpenAI: chat completions, completions,
embeddings, responses; Anthropic: messages and count_tokens) closely enough that the
official SDKs parse them, including their stream helpers.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
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


# --------------------------------------------------------------------------- tool calls

SHELL_TOOLS = ("Bash", "bash", "exec_command", "shell_command", "shell", "run_shell")
"""Names of the shell tools agents offer (Claude Code, OpenCode, Codex, the tests' own),
in the order a tool call picks them."""


@dataclass(frozen=True)
class ToolCall:
    """One call the fake asks a client to make (``number`` makes its ids unique)."""

    number: int
    name: str
    arguments: dict[str, Any]
    preamble: str = ""

    @property
    def call_id(self) -> str:
        """The id an OpenAI client echoes back with the result (``tool_call_id``/``call_id``)."""
        return f"call_fake{self.number:04d}"

    @property
    def tool_use_id(self) -> str:
        """The id an Anthropic client echoes back with the result."""
        return f"toolu_fake{self.number:04d}"

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text OpenAI sends."""
        return orjson.dumps(self.arguments).decode()

    def argument_pieces(self) -> list[str]:
        """The arguments cut in three, as a stream delivers them."""
        text = self.arguments_json
        third = max(1, len(text) // 3)
        return [text[:third], text[third : 2 * third], text[2 * third :]]


def tool_arguments(schema: Any, command: str) -> dict[str, Any]:
    """Arguments valid for a tool's JSON schema: ``command`` for its command property (as
    ``["bash", "-lc", command]`` when that is an array), a plain value for every other
    required property."""
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [r for r in schema.get("required", []) if isinstance(r, str)]
    wanted = [*required, *(n for n in ("command", "cmd") if n in properties)]
    arguments: dict[str, Any] = {}
    for name in dict.fromkeys(wanted):
        spec = properties.get(name)
        arguments[name] = _value_for(name, spec if isinstance(spec, dict) else {}, command)
    return arguments


def _value_for(name: str, spec: dict[str, Any], command: str) -> Any:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if name in ("command", "cmd"):
        return ["bash", "-lc", command] if kind == "array" else command
    if "default" in spec:
        return spec["default"]
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return spec["enum"][0]
    if kind in ("integer", "number"):
        return spec.get("minimum", 1)
    return {"boolean": False, "array": [], "object": {}}.get(str(kind), "Prints a marker")


def chat_tool_completion(model: str, call: ToolCall) -> dict[str, Any]:
    """A chat.completion whose message asks for ``call``."""
    body = chat_completion(model, call.preamble)
    choice = body["choices"][0]
    choice["message"]["content"] = call.preamble or None
    choice["message"]["tool_calls"] = [
        {
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
    ]
    choice["finish_reason"] = "tool_calls"
    return body


def chat_tool_events(model: str, body: Any, call: ToolCall) -> list[bytes]:
    """Chat chunks: the preamble, the call's id and name, its arguments in pieces, then
    ``finish_reason: tool_calls`` (and the usage chunk when asked)."""
    text = chat_events(model, body, [call.preamble] if call.preamble else [])
    cut = 1 + bool(call.preamble)  # the role chunk and the preamble's chunk come first
    head, tail = text[:cut], text[cut:]
    template = orjson.loads(head[0][len(b"data: ") :])

    def delta(tool_call: dict[str, Any]) -> bytes:
        choice = {**template["choices"][0], "delta": {"tool_calls": [{"index": 0, **tool_call}]}}
        return _data({**template, "choices": [choice]})

    opening = {"id": call.call_id, "type": "function"}
    head.append(delta({**opening, "function": {"name": call.name, "arguments": ""}}))
    head += [delta({"function": {"arguments": piece}}) for piece in call.argument_pieces()]
    stop = tail[0].replace(b'"finish_reason":"stop"', b'"finish_reason":"tool_calls"')
    return [*head, stop, *tail[1:]]


def _function_call_item(call: ToolCall, status: str = "completed") -> dict[str, Any]:
    arguments = call.arguments_json if status == "completed" else ""
    return {
        "type": "function_call",
        "id": f"fc_fake{call.number:04d}",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def responses_tool_object(model: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    """A Responses API ``response`` whose output asks for ``call`` (after the preamble)."""
    body = response_object(model, status, call.preamble)
    if status == "completed":
        output = [_response_message(call.preamble)] if call.preamble else []
        body["output"] = [*output, _function_call_item(call)]
    return body


def responses_tool_events(model: str, call: ToolCall) -> list[bytes]:
    """Responses events: the preamble message, then a function_call item whose arguments
    arrive in pieces, then ``response.completed``."""
    sequence = iter(range(10_000))

    def event(kind: str, **fields: Any) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

    pending = responses_tool_object(model, call, "in_progress")
    events = [
        event("response.created", response=pending),
        event("response.in_progress", response=pending),
    ]
    if call.preamble:
        item = {**_response_message("", status="in_progress"), "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        events += [
            event("response.output_item.added", output_index=0, item=item),
            event("response.content_part.added", part=part, **where),
            event("response.output_text.delta", delta=call.preamble, logprobs=[], **where),
            event("response.output_text.done", text=call.preamble, logprobs=[], **where),
            event("response.content_part.done", part={**part, "text": call.preamble}, **where),
            event(
                "response.output_item.done",
                output_index=0,
                item=_response_message(call.preamble),
            ),
        ]
    index = 1 if call.preamble else 0
    at = {"item_id": f"fc_fake{call.number:04d}", "output_index": index}
    events.append(
        event(
            "response.output_item.added",
            output_index=index,
            item=_function_call_item(call, "in_progress"),
        )
    )
    events += [
        event("response.function_call_arguments.delta", delta=piece, **at)
        for piece in call.argument_pieces()
    ]
    events += [
        event(
            "response.function_call_arguments.done",
            arguments=call.arguments_json,
            name=call.name,
            **at,
        ),
        event("response.output_item.done", output_index=index, item=_function_call_item(call)),
        event("response.completed", response=responses_tool_object(model, call)),
    ]
    return events


def anthropic_tool_message(model: str, call: ToolCall) -> dict[str, Any]:
    """A Messages API message asking for ``call`` (``stop_reason: tool_use``)."""
    body = anthropic_message(model, call.preamble)
    text = [{"type": "text", "text": call.preamble}] if call.preamble else []
    body["content"] = [
        *text,
        {"type": "tool_use", "id": call.tool_use_id, "name": call.name, "input": call.arguments},
    ]
    body["stop_reason"] = "tool_use"
    return body


def anthropic_tool_events(model: str, call: ToolCall) -> list[bytes]:
    """Messages API events: the preamble block, a tool_use block whose input arrives as
    ``input_json_delta`` pieces, then ``stop_reason: tool_use``."""
    events = anthropic_events(model, [call.preamble] if call.preamble else [])
    head = events[:-2] if call.preamble else events[:1]
    index = 1 if call.preamble else 0
    block = {"type": "tool_use", "id": call.tool_use_id, "name": call.name, "input": {}}
    head.append(
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
    )
    head += [
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            },
        )
        for piece in call.argument_pieces()
    ]
    head.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    head.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        )
    )
    head.append(_event("message_stop", {"type": "message_stop"}))
    return head


def tool_call_body(path: str, model: str, call: ToolCall) -> dict[str, Any]:
    """The non-streamed answer asking for ``call`` on ``path``."""
    if path == "/v1/chat/completions":
        return chat_tool_completion(model, call)
    if path == "/v1/responses":
        return responses_tool_object(model, call)
    return anthropic_tool_message(model, call)


def tool_call_events(path: str, model: str, body: Any, call: ToolCall) -> list[bytes]:
    """The streamed answer asking for ``call`` on ``path``."""
    if path == "/v1/chat/completions":
        return chat_tool_events(model, body, call)
    if path == "/v1/responses":
        return responses_tool_events(model, call)
    return anthropic_tool_events(model, call)
