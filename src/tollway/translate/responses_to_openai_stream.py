"""OpenAI ``chat.completion.chunk`` events -> OpenAI Responses stream events.

The Responses stream (https://platform.openai.com/docs/api-reference/responses-streaming)
is what the OpenAI SDKs' ``responses.stream`` and Codex read: ``response.created`` and
``response.in_progress``; for each output item ``response.output_item.added``, its
deltas and ``response.output_item.done``; finally ``response.completed`` (or
``response.incomplete``) with the whole response and its usage. Every event carries a
``sequence_number`` and is sent as ``event: <type>`` plus its JSON.

- the first chunk -> ``response.created`` and ``response.in_progress``.
- reasoning text (``reasoning_content`` deltas) -> a ``reasoning`` item with one summary
  part: ``response.reasoning_summary_part.added`` and
  ``response.reasoning_summary_text.delta`` events.
- text (or a refusal) -> a ``message`` item with one ``output_text`` (or ``refusal``)
  part: ``response.content_part.added``, ``response.output_text.delta`` (or
  ``response.refusal.delta``).
- each tool call (by its chat ``index``) -> a ``function_call`` item, opened once its name
  is known, its argument fragments as ``response.function_call_arguments.delta``; a call
  of a custom tool -> a ``custom_tool_call`` item whose ``input`` comes whole at the end
  (its chat arguments are the JSON ``{"input": ...}``, not the input itself).
  Items may interleave: each has its own ``output_index``.
- the ``finish_reason`` chunk closes every open item with its ``.done`` events;
  ``[DONE]`` (or the end of the upstream stream) sends ``response.completed``, or
  ``response.incomplete`` after ``length`` / ``content_filter``, with the usage of the
  usage chunk.
- a chunk with an ``error`` object, or a failure the gateway detects mid-stream, ->
  ``response.failed`` with the error; the stream is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.dialects.render import render_stream_error
from tollway.errors import TollwayError
from tollway.settings import Dialect
from tollway.translate.base import Body, StreamTranslator, event_json, sse
from tollway.translate.responses_to_openai_response import (
    ToolNames,
    base_response,
    call_item,
    custom_input,
    finish,
    message_item,
    new_id,
    obj,
    reasoning_item,
    usage_object,
)


@dataclass(slots=True)
class _Item:
    """One output item being streamed."""

    kind: str  # "reasoning", "message", "call"
    item_id: str
    output_index: int
    text: str = ""
    refusal: bool = False
    call_id: str = ""
    name: str | None = None  # the chat function name
    custom: bool = False
    opened: bool = False
    done: bool = False
    held: str = ""  # argument fragments that arrived before the call's name


class ChatChunksToResponseEvents(StreamTranslator):
    """One chat completion chunk stream in, one Responses event stream out."""

    def __init__(self, request: Body, names: ToolNames) -> None:
        self._request = request
        self._names = names
        self._sequence = 0
        self._response = base_response(request, new_id("resp"), request.get("model"), "in_progress")
        self._items: list[_Item] = []
        self._reasoning: _Item | None = None
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._started = False
        self._done = False
        self._finish_reason: Any = None
        self._usage: Any = None

    # ------------------------------------------------------------------ the interface

    def feed(self, event: bytes) -> list[bytes]:
        """Translate one chat chunk (or the ``[DONE]`` marker)."""
        if self._done:
            return []
        if _is_done_marker(event):
            return self._complete()
        chunk = event_json(event)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error") is not None:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else None
            return self._fail("upstream_error", f"The upstream provider failed: {message}")
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        events = self._start(chunk)
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events.extend(self._choice(choice))
        return events

    def finish(self) -> list[bytes]:
        """``response.completed`` when the upstream ended without ``[DONE]``."""
        return [] if self._done else self._complete()

    def failure(self, error: TollwayError) -> list[bytes]:
        """``response.failed`` for a failure the gateway met mid-stream (what Codex reads),
        then the error event the OpenAI SDKs raise on."""
        if self._done:
            return []
        return [*self._fail(error.code, error.message), render_stream_error(Dialect.OPENAI, error)]

    # ------------------------------------------------------------------------ chunks

    def _start(self, chunk: Body) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        if chunk.get("model"):
            self._response["model"] = chunk["model"]
        snapshot = dict(self._response)
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _choice(self, choice: Body) -> list[bytes]:
        delta = obj(choice.get("delta"))
        events: list[bytes] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events.extend(self._reasoning_delta(reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                events.extend(self._text_delta(text, refusal=key == "refusal"))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events.extend(self._call_delta(call))
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
            events.extend(self._close_all())
        return events

    def _new_item(self, kind: str, prefix: str) -> _Item:
        item = _Item(kind, new_id(prefix), len(self._items))
        self._items.append(item)
        return item

    def _reasoning_delta(self, text: str) -> list[bytes]:
        events: list[bytes] = []
        item = self._reasoning
        if item is None or item.done:
            item = self._reasoning = self._new_item("reasoning", "rs")
            item.opened = True
            events.append(self._added(item, reasoning_item(item.item_id, "")))
            part = {"type": "summary_text", "text": ""}
            events.append(
                self._event("response.reasoning_summary_part.added", **self._where(item), part=part)
            )
        item.text += text
        events.append(
            self._event("response.reasoning_summary_text.delta", **self._where(item), delta=text)
        )
        return events

    def _text_delta(self, text: str, refusal: bool) -> list[bytes]:
        events: list[bytes] = []
        item = self._message
        if item is None or item.done:
            item = self._message = self._new_item("message", "msg")
            item.opened, item.refusal = True, refusal
            skeleton = message_item(item.item_id, "", status="in_progress")
            skeleton["content"] = []
            events.append(self._added(item, skeleton))
            part = message_item(item.item_id, "", refusal=refusal)["content"][0]
            events.append(
                self._event(
                    "response.content_part.added", **self._where(item), content_index=0, part=part
                )
            )
        item.text += text
        kind = "response.refusal.delta" if item.refusal else "response.output_text.delta"
        fields: Body = {"content_index": 0, "delta": text}
        if not item.refusal:
            fields["logprobs"] = []
        events.append(self._event(kind, **self._where(item), **fields))
        return events

    def _call_delta(self, call: Body) -> list[bytes]:
        index = call.get("index", 0)
        function = obj(call.get("function"))
        item = self._calls.get(index)
        if item is None or item.done:
            item = self._calls[index] = self._new_item("call", "fc")
            item.call_id = f"call_{index}"
        if isinstance(call.get("id"), str) and call["id"] and not item.opened:
            item.call_id = call["id"]
        if isinstance(function.get("name"), str) and function["name"] and item.name is None:
            item.name = function["name"]
            item.custom = self._names.resolve(item.name)[2]
        fragment = function.get("arguments")
        fragment = fragment if isinstance(fragment, str) else ""
        events: list[bytes] = []
        if not item.opened:
            if item.name is None:
                item.held += fragment
                return []
            item.opened = True
            skeleton = call_item(item.item_id, item.call_id, item.name, "", self._names)
            skeleton["status"] = "in_progress"
            events.append(self._added(item, skeleton))
            fragment, item.held = item.held + fragment, ""
        item.text += fragment
        if fragment and not item.custom:
            events.append(
                self._event("response.function_call_arguments.delta", **self._where(item),
                            delta=fragment)
            )  # fmt: skip
        return events

    # ----------------------------------------------------------------------- endings

    def _close_all(self) -> list[bytes]:
        events: list[bytes] = []
        for item in self._items:
            if item.done:
                continue
            if not item.opened:  # a call whose name never came: show it anyway
                item.opened, item.name = True, item.name or ""
                item.text = item.held
                events.append(self._added(item, self._whole(item, "in_progress")))
            events.extend(self._close(item))
        return events

    def _close(self, item: _Item) -> list[bytes]:
        item.done = True
        where = self._where(item)
        events: list[bytes] = []
        if item.kind == "reasoning":
            part = {"type": "summary_text", "text": item.text}
            events.append(
                self._event("response.reasoning_summary_text.done", **where, text=item.text)
            )
            events.append(self._event("response.reasoning_summary_part.done", **where, part=part))
        elif item.kind == "message":
            part = message_item(item.item_id, item.text, item.refusal)["content"][0]
            if item.refusal:
                events.append(
                    self._event("response.refusal.done", **where, content_index=0,
                                refusal=item.text)
                )  # fmt: skip
            else:
                events.append(
                    self._event("response.output_text.done", **where, content_index=0,
                                text=item.text, logprobs=[])
                )  # fmt: skip
            events.append(
                self._event("response.content_part.done", **where, content_index=0, part=part)
            )
        elif not item.custom:
            events.append(
                self._event("response.function_call_arguments.done", **where,
                            name=self._names.resolve(item.name or "")[1], arguments=item.text)
            )  # fmt: skip
        else:
            events.append(
                self._event("response.custom_tool_call_input.done", **where,
                            input=custom_input(item.text))
            )  # fmt: skip
        events.append(
            self._event(
                "response.output_item.done",
                output_index=item.output_index,
                item=self._whole(item, "completed"),
            )
        )
        return events

    def _complete(self) -> list[bytes]:
        events = self._close_all()
        if not self._started:
            events.extend(self._start({}))
        self._done = True
        response = self._response
        response["output"] = [self._whole(item, "completed") for item in self._items]
        finish(response, self._finish_reason)
        response["usage"] = usage_object(self._usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.append(self._event(kind, response=response))
        return events

    def _fail(self, code: str, message: str) -> list[bytes]:
        events = [] if self._started else self._start({})
        self._done = True
        response = self._response
        response["status"] = "failed"
        response["error"] = {"code": code, "message": message}
        response["output"] = [
            self._whole(item, "incomplete") for item in self._items if item.opened
        ]
        response["usage"] = usage_object(self._usage)
        events.append(self._event("response.failed", response=response))
        return events

    # ------------------------------------------------------------------------- shapes

    def _whole(self, item: _Item, status: str) -> Body:
        if item.kind == "reasoning":
            return reasoning_item(item.item_id, item.text)
        if item.kind == "message":
            return message_item(item.item_id, item.text, item.refusal, status)
        return call_item(item.item_id, item.call_id, item.name or "", item.text, self._names,
                         status)  # fmt: skip

    def _added(self, item: _Item, shape: Body) -> bytes:
        return self._event("response.output_item.added", output_index=item.output_index, item=shape)

    @staticmethod
    def _where(item: _Item) -> Body:
        if item.kind == "reasoning":
            return {"item_id": item.item_id, "output_index": item.output_index, "summary_index": 0}
        return {"item_id": item.item_id, "output_index": item.output_index}

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(data, event=kind)


def _is_done_marker(event: bytes) -> bool:
    data = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return data == [b"[DONE]"]
