"""OpenAI ``chat.completion.chunk`` events -> Anthropic stream events.

A chat stream is a run of chunks, each with ``choices[0].delta`` pieces of text or of
tool calls (keyed by ``index``), a chunk with the ``finish_reason``, a usage chunk with
empty ``choices`` (the request asks for it), and ``data: [DONE]``
(https://platform.openai.com/docs/api-reference/chat-streaming). Anthropic sends
``message_start``, one block at a time (``content_block_start``, deltas,
``content_block_stop``), ``message_delta`` and ``message_stop``
(https://docs.anthropic.com/en/docs/build-with-claude/streaming). The translation:

- the first chunk with choices -> ``message_start``, its usage all zeros: the counts
  arrive only at the end of a chat stream. ``message_delta`` then carries the real
  ``input_tokens``, cache reads and ``output_tokens`` (cumulative counts replace the
  earlier ones in Anthropic's SDKs). Chunks with no choices and no usage (Azure's
  content filter results, for one) are skipped.
- text -> a text block; each tool call -> a ``tool_use`` block (id and name at its
  start, argument fragments as ``input_json_delta``). A new text block starts when text
  follows a tool call.
- reasoning deltas (``reasoning_content`` or ``reasoning``, from OpenAI-compatible
  servers) -> a ``thinking`` block with ``thinking_delta`` events and an empty signature,
  when the client asked for thinking; otherwise they are skipped.
- Anthropic blocks cannot interleave, but some servers interleave tool call fragments
  by index. The open block switches to another only once its arguments are complete
  JSON; until then the other's fragments are held and sent when it opens. A call with
  no ``id`` gets ``call_<index>``.
- the ``finish_reason`` chunk closes the open blocks; ``[DONE]`` (or ``finish()`` when
  it never came) sends ``message_delta`` with the stop reason and usage, then
  ``message_stop``.
- a chunk with an ``error`` object -> an Anthropic ``error`` event, and the stream is
  over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.dialects.render import render_stream_error
from tollway.errors import RateLimited, TollwayError, UpstreamError
from tollway.settings import Dialect
from tollway.translate.anthropic_to_openai_response import (
    message_id,
    message_usage,
    reasoning_text,
)
from tollway.translate.anthropic_to_openai_response import stop_reason as map_stop_reason
from tollway.translate.base import Body, StreamTranslator, event_json, log, sse


def _event(data: Body) -> bytes:
    return sse(data, event=data["type"])


@dataclass(slots=True)
class _Block:
    """Text, thinking or one tool call, held until it can open as an Anthropic block."""

    tool_id: str | None = None  # None for text and thinking
    thinking: bool = False
    name: str | None = None
    arguments: str = ""  # every argument fragment received
    held: list[str] = field(default_factory=list)  # fragments not yet sent
    index: int | None = None  # the Anthropic block index once opened
    closed: bool = False

    @property
    def is_tool(self) -> bool:
        return self.tool_id is not None

    def complete(self) -> bool:
        """Text can always end; a tool call once its arguments parse as a JSON object."""
        if not self.is_tool:
            return True
        try:
            return isinstance(orjson.loads(self.arguments), dict)
        except orjson.JSONDecodeError:
            return False


class _Blocks:
    """Content blocks in Anthropic order: one open at a time, the rest held."""

    def __init__(self) -> None:
        self.active: _Block | None = None
        self.waiting: list[_Block] = []
        self.text: _Block | None = None
        self.reasoning: _Block | None = None
        self.tools: dict[int, _Block] = {}
        self.count = 0

    def add_text(self, text: str) -> list[bytes]:
        if self.text is None or self.text.closed:
            self.text = _Block()
            self.waiting.append(self.text)
        return self._add(self.text, text)

    def add_thinking(self, text: str) -> list[bytes]:
        if self.reasoning is None or self.reasoning.closed:
            self.reasoning = _Block(thinking=True)
            self.waiting.append(self.reasoning)
        return self._add(self.reasoning, text)

    def add_tool(self, index: int, call_id: Any, name: Any, arguments: str) -> list[bytes]:
        block = self.tools.get(index)
        if block is None:
            block = self.tools[index] = _Block(tool_id=f"call_{index}")
            self.waiting.append(block)
        if isinstance(call_id, str) and call_id and block.index is None:
            block.tool_id = call_id
        if isinstance(name, str) and name and block.name is None:
            block.name = name
        if block.closed:
            if arguments.strip():
                log.warning(
                    "tool call fragment after its block closed",
                    extra={"fields": {"index": index}},
                )
            return []
        block.arguments += arguments
        return self._add(block, arguments)

    def _add(self, block: _Block, fragment: str) -> list[bytes]:
        events: list[bytes] = []
        if block is self.active:
            events.extend(self._delta(block, fragment))
        elif fragment:
            block.held.append(fragment)
        return events + self._advance()

    def _advance(self) -> list[bytes]:
        """Open waiting blocks in order while the open one may end."""
        events: list[bytes] = []
        while self.waiting and (self.active is None or self.active.complete()):
            following = self.waiting[0]
            if following.is_tool and following.name is None:
                break  # its start needs the name
            events.extend(self._close_active())
            events.extend(self._open(self.waiting.pop(0)))
        return events

    def close_all(self) -> list[bytes]:
        """Close the open block, then open and close every held one."""
        events = self._close_active()
        while self.waiting:
            events.extend(self._open(self.waiting.pop(0)))
            events.extend(self._close_active())
        return events

    def _open(self, block: _Block) -> list[bytes]:
        block.index, self.count = self.count, self.count + 1
        self.active = block
        content: Body = {"type": "text", "text": ""}
        if block.thinking:
            content = {"type": "thinking", "thinking": "", "signature": ""}
        elif block.is_tool:
            content = {"type": "tool_use", "id": block.tool_id, "name": block.name or ""}
            content["input"] = {}
        start = {"type": "content_block_start", "index": block.index, "content_block": content}
        held, block.held = block.held, []
        return [_event(start)] + [event for text in held for event in self._delta(block, text)]

    def _delta(self, block: _Block, fragment: str) -> list[bytes]:
        if not fragment:
            return []
        delta: Body = {"type": "text_delta", "text": fragment}
        if block.thinking:
            delta = {"type": "thinking_delta", "thinking": fragment}
        elif block.is_tool:
            delta = {"type": "input_json_delta", "partial_json": fragment}
        return [_event({"type": "content_block_delta", "index": block.index, "delta": delta})]

    def _close_active(self) -> list[bytes]:
        block, self.active = self.active, None
        if block is None:
            return []
        block.closed = True
        return [_event({"type": "content_block_stop", "index": block.index})]


class ChatChunksToMessageEvents(StreamTranslator):
    """One chat completion chunk stream in, one Anthropic message stream out."""

    def __init__(self, thinking: bool = False) -> None:
        self.blocks = _Blocks()
        self.thinking = thinking  # the client asked for thinking
        self.started = False
        self.done = False
        self.finish_reason: str | None = None
        self.refused = False
        self.usage: Body | None = None

    def feed(self, event: bytes) -> list[bytes]:
        """Translate one chat chunk (or the ``[DONE]`` marker)."""
        if self.done:
            return []
        if _is_done_marker(event):
            return self._close()
        chunk = event_json(event)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error") is not None:
            return self._error(chunk["error"])
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[bytes] = []
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events.extend(self._start(chunk))
                events.extend(self._choice(choice))
        return events

    def finish(self) -> list[bytes]:
        """``message_delta`` and ``message_stop``, if ``[DONE]`` never came."""
        return [] if self.done or not self.started else self._close()

    def _start(self, chunk: Body) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: Body = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event({"type": "message_start", "message": message})]

    def _choice(self, choice: Body) -> list[bytes]:
        delta = choice.get("delta") or {}
        events: list[bytes] = []
        reasoning = reasoning_text(delta) if self.thinking else ""
        if reasoning:
            events.extend(self.blocks.add_thinking(reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self.refused = self.refused or key == "refusal"
                events.extend(self.blocks.add_text(text))
        for call in delta.get("tool_calls") or []:
            events.extend(self._tool_call(call))
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
            events.extend(self.blocks.close_all())
        return events

    def _tool_call(self, call: Any) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        function = call.get("function") or {}
        arguments = function.get("arguments")
        return self.blocks.add_tool(
            call.get("index", 0),
            call.get("id"),
            function.get("name"),
            arguments if isinstance(arguments, str) else "",
        )

    def _close(self) -> list[bytes]:
        self.done = True
        if not self.started:
            return []
        usage = {"output_tokens": 0} if self.usage is None else message_usage(self.usage)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": map_stop_reason(self.finish_reason, self.refused),
                "stop_sequence": None,
            },
            "usage": usage,
        }
        return [*self.blocks.close_all(), _event(delta), _event({"type": "message_stop"})]

    def _error(self, error: Any) -> list[bytes]:
        self.done = True
        return [render_stream_error(Dialect.ANTHROPIC, upstream_error(error))]


def _is_done_marker(event: bytes) -> bool:
    data = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return data == [b"[DONE]"]


def upstream_error(error: Any) -> TollwayError:
    """The gateway error for an OpenAI ``error`` object met mid-stream."""
    detail = error.get("message") if isinstance(error, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    message = f"The upstream provider failed mid-stream: {detail or kind or 'unknown error'}"
    if kind in ("rate_limit_error", "rate_limit_exceeded"):
        return RateLimited(message)
    return UpstreamError(message)
