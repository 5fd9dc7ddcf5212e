"""The pieces of a screened stream: one streamed text, event framing, and where each
dialect streams the texts a model writes.

A streamed text is a run of deltas that together make one string of the answer: a
choice's content, refusal, reasoning or one tool call's arguments (OpenAI chat), a
content block's text, thinking or tool input JSON (Anthropic Messages), an output
text, refusal, reasoning text or function call's arguments (Responses). Each has its
own ``StreamedText``, keyed by the ids the events carry; ``key`` makes any such id
usable as a key (an id that is a JSON object or list included).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import orjson

from tollway.guards.base import TextGuard
from tollway.guards.redact import StreamRedactor

# OpenAI chat: the fields of a choice's ``delta`` that stream text, besides tool calls.
# ``reasoning_content`` (vLLM, DeepSeek) and ``reasoning`` (OpenRouter, Ollama) are
# the reasoning of OpenAI-compatible servers.
CHAT_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")
# Anthropic Messages: a ``content_block_delta``'s delta type and the field with its text.
# https://docs.anthropic.com/en/docs/build-with-claude/streaming#content-block-delta-types
MESSAGE_DELTAS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
# Responses: ``response.<name>.delta`` events, the field their ``.done`` event repeats
# the whole text in, and the fields that say which text it is.
# https://platform.openai.com/docs/api-reference/responses-streaming
RESPONSES_TEXTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "output_text": ("text", ("item_id", "output_index", "content_index")),
    "refusal": ("refusal", ("item_id", "output_index", "content_index")),
    "reasoning_text": ("text", ("item_id", "output_index", "content_index")),
    "reasoning_summary_text": ("text", ("item_id", "output_index", "summary_index")),
    "function_call_arguments": ("arguments", ("item_id", "output_index")),
    "custom_tool_call_input": ("input", ("item_id", "output_index")),
    "mcp_call_arguments": ("arguments", ("item_id", "output_index")),
    "code_interpreter_call_code": ("code", ("item_id", "output_index")),
}


def key(value: Any) -> Hashable:
    """``value`` as a dict key: itself when it can be one, else its JSON."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class StreamedText:
    """One text being streamed: a redacting and a flagging scan of it, and what its
    held-back rest is released as: ``kind`` (the chat delta field, Messages delta type
    or Responses event name it streams in) and ``where`` (the fields naming it)."""

    __slots__ = ("flag", "kind", "redact", "where")

    def __init__(
        self,
        redacting: list[TextGuard],
        flagging: list[TextGuard],
        kind: str,
        where: dict[str, Any],
    ) -> None:
        self.redact = StreamRedactor(redacting) if redacting else None
        self.flag = StreamRedactor(flagging) if flagging else None
        self.kind = kind
        self.where = where

    def feed(self, delta: str) -> str:
        """The redacted text that is final now."""
        if self.flag is not None:
            self.flag.feed(delta)
        return self.redact.feed(delta) if self.redact is not None else delta

    def flush(self) -> str:
        """The rest, at the end of the text."""
        if self.flag is not None:
            self.flag.flush()
        return self.redact.flush() if self.redact is not None else ""


def parse(event: bytes) -> tuple[bytes | None, bytes | None]:
    """An event's name and data (data lines joined), or (None, None) without data."""
    name: bytes | None = None
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data) if data else None


def render(name: bytes | None, obj: dict[str, Any]) -> bytes:
    """One SSE event."""
    head = b"event: " + name + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"
