"""Bedrock Converse answers -> OpenAI chat.completion and chat.completion.chunk events.

Complete response (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html):
``output.message.content`` text blocks are joined into content (null when there are
tool calls and no text); toolUse blocks -> tool_calls with the same ids and the input
as a JSON string; reasoning and other blocks are left out. stopReason end_turn /
stop_sequence -> stop, tool_use -> tool_calls, max_tokens /
model_context_window_exceeded -> length, content_filtered / guardrail_intervened ->
content_filter. usage -> prompt_tokens = inputTokens + cache reads + cache writes,
``prompt_tokens_details.cached_tokens`` = cache reads. Converse returns no id, so the
completion id is fresh.

Stream (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html),
as the synthetic SSE events the Bedrock provider decodes:

- ``messageStart`` -> the first chunk, ``delta: {"role": "assistant", "content": ""}``;
- ``contentBlockStart`` with ``toolUse`` -> a tool call with the next ``index``, its id
  and name, arguments ``""``; ``contentBlockDelta`` ``toolUse.input`` fragments -> its
  arguments; ``delta.text`` -> content; reasoning deltas are dropped;
- ``messageStop`` -> a chunk with an empty delta and the ``finish_reason``;
- ``metadata`` (usage; the last event) -> a usage chunk when the client asked
  ``stream_options.include_usage``, then ``data: [DONE]``. If the stream ends without
  it, ``finish()`` sends ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

from tollway.metering.usage import Usage, from_converse
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
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """The chat ``finish_reason`` for a Converse ``stopReason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _tool_call(use: Body) -> Body:
    return tool_call(use.get("toolUseId"), use.get("name"), json_arguments(use.get("input")))


def chat_completion(upstream_body: Body, model: str) -> Body:
    """A chat.completion from a Converse response."""
    message = (upstream_body.get("output") or {}).get("message") or {}
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
    calls = [_tool_call(b["toolUse"]) for b in blocks if isinstance(b.get("toolUse"), dict)]
    reply = assistant_message(text or (None if calls else ""), calls)
    reason = finish_reason(upstream_body.get("stopReason"))
    usage = from_converse(upstream_body.get("usage"))
    return completion(
        chat_id(),  # Converse answers carry no id
        model,
        [choice(0, reply, reason)],
        chat_usage(usage) if usage is not None else None,
    )


class ConverseChatStream(ChatChunkStream):
    """ConverseStream events in, chat.completion.chunk events out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._started = False
        self._stopped = False
        self._done = False
        self._tools: dict[int, int] = {}  # contentBlockIndex -> tool call index

    def feed(self, event: bytes) -> list[bytes]:
        """Chunks for one ConverseStream event."""
        data = event_json(event)
        if self._done or not isinstance(data, dict):
            return []
        match _event_type(event):
            case "messageStart":
                return self._start()
            case "contentBlockStart":
                return self._block_start(data)
            case "contentBlockDelta":
                return self._block_delta(data)
            case "messageStop":
                self._stopped = True
                reason = finish_reason(data.get("stopReason"))
                return [*self._start(), self._chunk({}, reason)]
            case "metadata":
                return self._close(from_converse(data.get("usage")))
            case _:  # contentBlockStop and kinds added later
                return []

    def finish(self) -> list[bytes]:
        """The terminal chunks, when ``metadata`` never came."""
        return [] if self._done else self._close(None)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: Body) -> list[bytes]:
        start = data.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return []
        index = self._tools[_block_index(data)] = len(self._tools)
        call = {"index": index, **tool_call(use.get("toolUseId"), use.get("name"), "")}
        return [*self._start(), self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: Body) -> list[bytes]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        if isinstance(delta.get("text"), str) and delta["text"]:
            return [*self._start(), self._chunk({"content": delta["text"]})]
        use = delta.get("toolUse")
        index = self._tools.get(_block_index(data))
        if isinstance(use, dict) and index is not None and use.get("input"):
            fragment = {"index": index, "function": {"arguments": str(use["input"])}}
            return [self._chunk({"tool_calls": [fragment]})]
        return []  # reasoning and citation deltas

    def _close(self, usage: Usage | None) -> list[bytes]:
        self._done = True
        events = [] if self._stopped else [*self._start(), self._chunk({}, "stop")]
        return events + self._end(chat_usage(usage or Usage()))


def _event_type(event: bytes) -> str:
    for line in event.splitlines():
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return ""


def _block_index(data: Body) -> int:
    index = data.get("contentBlockIndex")
    return index if isinstance(index, int) else -1
