"""Gemini answers -> OpenAI chat.completion and chat.completion.chunk events.

Complete response (https://ai.google.dev/api/generate-content#generatecontentresponse):
``candidates[i]`` -> ``choices[i]``; text parts (not thought parts) -> content; function
calls -> tool_calls (ids ``call_<n>``, see ``openai_to_gemini``); finishReason STOP ->
stop (tool_calls when the candidate called functions), MAX_TOKENS -> length,
SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/IMAGE_SAFETY -> content_filter, any
other -> stop; a prompt blocked by ``promptFeedback`` -> one empty choice with
content_filter; usageMetadata -> usage (prompt includes cached and tool-use prompt
tokens, completion includes thinking tokens, as OpenAI counts reasoning).

Stream (``streamGenerateContent?alt=sse``): every upstream event is a whole
GenerateContentResponse. Each becomes one chunk per candidate with its new text and
function calls (Gemini sends a call whole, so its arguments arrive in one delta); a
candidate's finishReason becomes a chunk with an empty delta and ``finish_reason``.
Gemini has no end marker: when its stream ends the client gets a usage chunk (only if
it asked with ``stream_options.include_usage``) and ``data: [DONE]``.
https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from tollway.metering.usage import Usage
from tollway.providers.gemini import usage_from_metadata
from tollway.translate.base import Body, StreamTranslator, event_json, sse

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def chat_completion(upstream_body: Body, client_model: str) -> Body:
    """A chat.completion from a GenerateContentResponse."""
    candidates = upstream_body.get("candidates") or []
    choices = [_choice(candidate, i) for i, candidate in enumerate(candidates)]
    if not choices:
        reason = "content_filter" if _blocked(upstream_body) else "stop"
        message = {"role": "assistant", "content": "", "refusal": None}
        choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}]
    out: Body = {
        "id": _completion_id(upstream_body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": upstream_body.get("modelVersion") or client_model,
        "choices": choices,
    }
    usage = usage_from_metadata(upstream_body.get("usageMetadata"))
    if usage is not None:
        out["usage"] = openai_usage(usage)
    return out


class GeminiChatStream(StreamTranslator):
    """streamGenerateContent events in, chat.completion.chunk events out."""

    def __init__(self, client_model: str, include_usage: bool) -> None:
        self._model = client_model
        self._include_usage = include_usage
        self._id: str | None = None  # from the first event's responseId
        self._created = int(time.time())
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> tool calls sent so far
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: bytes) -> list[bytes]:
        """Chunks for one GenerateContentResponse."""
        data = event_json(event)
        if not isinstance(data, dict):
            return []
        if self._id is None:
            self._id = _completion_id(data)
            self._model = str(data.get("modelVersion") or self._model)
        usage = usage_from_metadata(data.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        out: list[bytes] = []
        candidates = data.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(candidate, dict):
                out.extend(self._candidate(candidate, position))
        if not candidates and _blocked(data):
            out.append(self._chunk(0, {"role": "assistant", "content": ""}, "content_filter"))
        return out

    def finish(self) -> list[bytes]:
        """The usage chunk (when asked for) and ``[DONE]``, once."""
        if self._done:
            return []
        self._done = True
        out: list[bytes] = []
        if self._include_usage:
            out.append(self._envelope([], openai_usage(self._usage or Usage())))
        out.append(sse("[DONE]"))
        return out

    def _candidate(self, candidate: Body, position: int) -> list[bytes]:
        index = candidate.get("index", position)
        index = index if isinstance(index, int) else position
        sent = self._calls.get(index, 0)
        text, calls = _split_parts(candidate, first_call=sent)
        self._calls[index] = sent + len(calls)
        delta: Body = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
            delta["content"] = "" if text or not calls else None
        if text:
            delta["content"] = text
        if calls:
            delta["tool_calls"] = [
                {"index": sent + offset, **call} for offset, call in enumerate(calls)
            ]
        out = [self._chunk(index, delta, None)] if delta else []
        reason = _finish_reason(candidate.get("finishReason"), self._calls[index] > 0)
        if reason is not None:
            out.append(self._chunk(index, {}, reason))
        return out

    def _chunk(self, index: int, delta: Body, reason: str | None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._envelope([choice])

    def _envelope(self, choices: list[Body], usage: Body | None = None) -> bytes:
        if self._id is None:
            self._id = _completion_id({})
        chunk: Body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = usage  # null until the last chunk, as OpenAI sends it
        return sse(chunk)


def openai_usage(usage: Usage) -> Body:
    """An OpenAI ``usage`` object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _completion_id(upstream_body: Body) -> str:
    return "chatcmpl-" + str(upstream_body.get("responseId") or uuid.uuid4().hex)


def _blocked(upstream_body: Body) -> bool:
    feedback = upstream_body.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _finish_reason(reason: Any, has_calls: bool) -> str | None:
    if not reason:
        return None
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def _tool_call(part: Body, position: int) -> Body:
    function_call = part["functionCall"]
    call: Body = {
        "id": str(function_call.get("id") or f"call_{position}"),
        "type": "function",
        "function": {
            "name": function_call.get("name", ""),
            "arguments": orjson.dumps(function_call.get("args") or {}).decode(),
        },
    }
    if part.get("thoughtSignature"):
        # Handed to the client so it can be replayed (Gemini 3 requires it).
        call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return call


def _split_parts(candidate: Body, first_call: int = 0) -> tuple[str, list[Body]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    text: list[str] = []
    calls: list[Body] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(_tool_call(part, first_call + len(calls)))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), calls


def _choice(candidate: Body, position: int) -> Body:
    text, calls = _split_parts(candidate)
    content = text or (None if calls else "")
    message: Body = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    index = candidate.get("index", position)
    return {
        "index": index if isinstance(index, int) else position,
        "message": message,
        "logprobs": None,
        "finish_reason": _finish_reason(candidate.get("finishReason"), bool(calls)) or "stop",
    }
