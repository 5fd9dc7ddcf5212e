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

from typing import Any

from tollway.metering.usage import Usage, from_gemini
from tollway.translate.base import Body, event_json
from tollway.translate.openai_chat import (
    ChatChunkStream,
    assistant_message,
    chat_id,
    chat_usage,
    choice,
    completion,
    json_arguments,
    tool_call,
)

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
        choices = [choice(0, assistant_message("", []), reason)]
    usage = from_gemini(upstream_body.get("usageMetadata"))
    return completion(
        chat_id(upstream_body.get("responseId")),
        upstream_body.get("modelVersion") or client_model,
        choices,
        chat_usage(usage, reasoning=True) if usage is not None else None,
    )


class GeminiChatStream(ChatChunkStream):
    """streamGenerateContent events in, chat.completion.chunk events out."""

    def __init__(self, client_model: str, include_usage: bool) -> None:
        super().__init__(client_model, include_usage)
        self._named = False  # id and model are taken from the first event
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> tool calls sent so far
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: bytes) -> list[bytes]:
        """Chunks for one GenerateContentResponse."""
        data = event_json(event)
        if not isinstance(data, dict):
            return []
        if not self._named:
            self._named = True
            self.id = chat_id(data.get("responseId"))
            self.model = str(data.get("modelVersion") or self.model)
        usage = from_gemini(data.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        out: list[bytes] = []
        candidates = data.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(candidate, dict):
                out.extend(self._candidate(candidate, position))
        if not candidates and _blocked(data):
            out.append(self._chunk({"role": "assistant", "content": ""}, "content_filter"))
        return out

    def finish(self) -> list[bytes]:
        """The usage chunk (when asked for) and ``[DONE]``, once."""
        if self._done:
            return []
        self._done = True
        return self._end(chat_usage(self._usage or Usage(), reasoning=True))

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
        out = [self._chunk(delta, index=index)] if delta else []
        reason = _finish_reason(candidate.get("finishReason"), self._calls[index] > 0)
        if reason is not None:
            out.append(self._chunk({}, reason, index))
        return out


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
    call = tool_call(
        str(function_call.get("id") or f"call_{position}"),
        function_call.get("name", ""),
        json_arguments(function_call.get("args")),
    )
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
    message = assistant_message(text or (None if calls else ""), calls)
    index = candidate.get("index", position)
    reason = _finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
    return choice(index if isinstance(index, int) else position, message, reason)
