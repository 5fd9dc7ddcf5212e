"""Anthropic stream events -> OpenAI ``chat.completion.chunk`` events.

Anthropic streams a message as ``message_start``, then per content block
``content_block_start``, ``content_block_delta``..., ``content_block_stop``, then
``message_delta`` (stop reason, cumulative usage) and ``message_stop``, with ``ping``
and ``error`` events anywhere (https://docs.anthropic.com/en/docs/build-with-claude/streaming).
A chat stream is a run of chunks ending in ``data: [DONE]``
(https://platform.openai.com/docs/api-reference/chat-streaming). The translation:

- ``message_start`` -> the first chunk, ``delta: {"role": "assistant", "content": ""}``.
- text deltas -> ``delta.content`` chunks.
- a ``tool_use`` block -> a tool call with the next ``index``: its start sends the id
  and name (arguments ``""``), each ``input_json_delta`` an argument fragment.
- a ``thinking`` block -> its ``thinking_delta`` texts as ``delta.reasoning_content``
  (``REASONING_SEPARATOR`` between two blocks), and at its ``content_block_stop`` one
  ``delta.thinking_blocks`` entry with the whole block and its signature, so the client
  can send it back; a ``redacted_thinking`` block -> a ``thinking_blocks`` entry at its
  start. Entries carry an ``index`` (the OpenAI SDKs merge list deltas by index).
- citations and any other block kinds are dropped.
- ``message_stop`` -> a chunk with an empty delta and the ``finish_reason``; then, only
  when the client asked ``stream_options.include_usage``, a usage chunk with empty
  ``choices`` (and every earlier chunk carries ``"usage": null``, as OpenAI does);
  then ``data: [DONE]``.
- an ``error`` event -> an OpenAI-dialect error event, and the stream is over.

If the upstream ends without ``message_stop``, ``finish()`` sends the terminal chunks
(finish reason from ``message_delta``, or ``stop``).
"""

from __future__ import annotations

from typing import Any

from tollway.dialects.render import render_stream_error
from tollway.errors import (
    RateLimited,
    TollwayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollway.settings import Dialect
from tollway.translate.base import Body, event_json
from tollway.translate.openai_chat import ChatChunkStream, chat_id, json_arguments, tool_call
from tollway.translate.openai_to_anthropic_response import (
    REASONING_SEPARATOR,
    anthropic_usage,
    finish_reason,
    thinking_block,
)

# https://docs.anthropic.com/en/api/errors
_STREAM_ERRORS: dict[str, type[TollwayError]] = {
    "overloaded_error": UpstreamUnavailable,
    "rate_limit_error": RateLimited,
    "timeout_error": UpstreamTimeout,
}


class MessagesToChatChunks(ChatChunkStream):
    """One Anthropic message stream in, one chat completion chunk stream out."""

    def __init__(self, include_usage: bool) -> None:
        super().__init__("", include_usage)  # the model comes with message_start
        self.started = False
        self.done = False
        self.stop_reason: str | None = None
        self.usage: Body = {}
        self.tool_calls: dict[int, int] = {}  # Anthropic block index -> tool call index
        self.thinking: dict[int, Body] = {}  # Anthropic block index -> thinking_blocks entry
        self.reasoned = False  # some reasoning text was sent

    def feed(self, event: bytes) -> list[bytes]:
        """Translate one Anthropic event."""
        data = event_json(event)
        if self.done or not isinstance(data, dict):
            return []
        match data.get("type"):
            case "message_start":
                return self._start(data.get("message"))
            case "content_block_start":
                return self._block_start(data)
            case "content_block_delta":
                return self._block_delta(data)
            case "content_block_stop":
                return self._block_stop(data)
            case "message_delta":
                self._message_delta(data)
                return []
            case "message_stop":
                return self._close()
            case "error":
                return self._error(data.get("error"))
            case _:  # ping, and kinds added later
                return []

    def finish(self) -> list[bytes]:
        """The terminal chunks, if ``message_stop`` never came."""
        return [] if self.done or not self.started else self._close()

    def _start(self, message: Any) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        if isinstance(message, dict):
            self.id = chat_id(message.get("id"))
            self.model = str(message.get("model") or "")
            self._add_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: Body) -> list[bytes]:
        events = self._start(None)
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            events.append(self._chunk({"content": block["text"]}))
        elif kind in ("thinking", "redacted_thinking"):
            entry = {"index": len(self.thinking), **(thinking_block(block) or {})}
            self.thinking[data.get("index", -1)] = entry
            if kind == "redacted_thinking":
                events.append(self._chunk({"thinking_blocks": [entry]}))
            else:
                initial, entry["thinking"] = entry["thinking"], ""
                events.extend(self._reasoning(entry, initial))
        elif kind == "tool_use":
            index = len(self.tool_calls)
            self.tool_calls[data.get("index", -1)] = index
            initial = json_arguments(block.get("input")) if block.get("input") else ""
            call = {"index": index, **tool_call(block.get("id"), block.get("name"), initial)}
            events.append(self._chunk({"tool_calls": [call]}))
        return events

    def _block_delta(self, data: Body) -> list[bytes]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [*self._start(None), self._chunk({"content": delta["text"]})]
        tool_index = self.tool_calls.get(data.get("index", -1))
        if kind == "input_json_delta" and tool_index is not None and delta.get("partial_json"):
            fragment = {"index": tool_index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [fragment]})]
        entry = self.thinking.get(data.get("index", -1))
        if entry is None or entry["type"] != "thinking":
            return []  # citation deltas, and kinds added later
        if kind == "thinking_delta":
            return self._reasoning(entry, delta.get("thinking"))
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            entry["signature"] += delta["signature"]  # sent with the block's stop
        return []

    def _reasoning(self, entry: Body, text: Any) -> list[bytes]:
        """A ``reasoning_content`` delta for a thinking block's text."""
        if not isinstance(text, str) or not text:
            return []
        piece = text
        if not entry["thinking"] and self.reasoned:
            piece = REASONING_SEPARATOR + text  # a new block's first text
        entry["thinking"] += text
        self.reasoned = True
        return [self._chunk({"reasoning_content": piece})]

    def _block_stop(self, data: Body) -> list[bytes]:
        """A thinking block's entry in ``thinking_blocks``, once its signature is known."""
        entry = self.thinking.get(data.get("index", -1))
        if entry is None or entry["type"] != "thinking":
            return []
        return [self._chunk({"thinking_blocks": [entry]})]

    def _message_delta(self, data: Body) -> None:
        delta = data.get("delta") or {}
        if delta.get("stop_reason") is not None:
            self.stop_reason = delta["stop_reason"]
        self._add_usage(data.get("usage"))

    def _add_usage(self, usage: Any) -> None:
        """Counts are cumulative: a later non-null value replaces an earlier one."""
        if isinstance(usage, dict):
            self.usage.update({key: value for key, value in usage.items() if value is not None})

    def _close(self) -> list[bytes]:
        events = [*self._start(None), self._chunk({}, finish_reason(self.stop_reason))]
        self.done = True
        return events + self._end(anthropic_usage(self.usage))

    def _error(self, error: Any) -> list[bytes]:
        self.done = True
        return [render_stream_error(Dialect.OPENAI, upstream_error(error))]


def upstream_error(error: Any) -> TollwayError:
    """The gateway error for an Anthropic ``error`` object met mid-stream."""
    kind = error.get("type") if isinstance(error, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    message = f"The upstream provider failed mid-stream: {detail or kind or 'unknown error'}"
    return _STREAM_ERRORS.get(kind or "", UpstreamError)(message)
