"""OpenAI Responses answers: whole ``response`` <-> event stream.

A response becomes the events OpenAI streams for it
(https://platform.openai.com/docs/api-reference/responses-streaming), each sent as
``event: <type>`` plus its JSON with a ``sequence_number``: ``response.created`` and
``response.in_progress`` (the response with no output yet); per output item
``response.output_item.added`` (an empty skeleton with the same ids), its parts and
deltas (text, refusal, reasoning summary and text, function arguments, custom tool
input; other items come whole), ``response.output_item.done``; then
``response.completed`` or ``response.incomplete`` with the whole response.

Events become a response from their terminal event (rebuilding ``output`` from the
``output_item.done`` events when the terminal event leaves it out); a stream that
failed or never ended is no answer (None).

Some request fields are echoed in the response without being part of the cache key
(who asked, and the caller's bookkeeping): ``echo`` sets them to the current caller's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tollway.translate.base import Body, event_json, sse

ECHOED: dict[str, Any] = {
    "metadata": {},
    "user": None,
    "safety_identifier": None,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
}
_LIFECYCLE = (b"response.created", b"response.in_progress", b"response.completed",
              b"response.incomplete")  # fmt: skip
_ANSWERED = frozenset({"completed", "incomplete"})
# The events a whole response is read from (or that say there is none).
_READ = frozenset({b"response.completed", b"response.incomplete", b"response.failed", b"error",
                   b"response.output_item.done"})  # fmt: skip


def response_events(body: Body) -> list[bytes]:
    """The event stream of a completed (or incomplete) ``response`` body."""
    stream = _Events()
    head = {**body, "status": "in_progress", "output": [], "usage": None, "error": None}
    head["incomplete_details"] = None
    if "completed_at" in head:
        head["completed_at"] = None
    stream.add("response.created", response=head)
    stream.add("response.in_progress", response=head)
    for index, item in enumerate(body.get("output") or []):
        _item(stream, index, item)
    ending = "response.completed" if body.get("status") == "completed" else "response.incomplete"
    stream.add(ending, response=body)
    return stream.events


def response_body(events: Sequence[bytes]) -> Body | None:
    """The response a complete event stream ends with, or None."""
    final: Any = None
    done: dict[int, Any] = {}
    for event in events:
        if event.startswith(b"event: ") and event[7 : event.find(b"\n")].strip() not in _READ:
            continue  # a delta: the terminal event has it all (named events are not parsed)
        data = event_json(event)
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind in ("response.failed", "error") or (kind is None and "error" in data):
            return None
        if kind == "response.output_item.done" and isinstance(data.get("output_index"), int):
            done[data["output_index"]] = data.get("item")
        elif kind in ("response.completed", "response.incomplete"):
            final = data.get("response")
    if not isinstance(final, dict) or final.get("status") not in _ANSWERED:
        return None
    if final.get("output") is None:
        final["output"] = [done[index] for index in sorted(done)]
    return final


def echo(body: Body, payload: Mapping[str, Any]) -> Body:
    """``body`` with the echoed request fields set to ``payload``'s (``body`` itself
    when they already are)."""
    wanted = _wanted(body, payload)
    return {**body, **wanted} if wanted else body


def echo_events(events: Sequence[bytes], payload: Mapping[str, Any]) -> list[bytes]:
    """Recorded events with the echoed fields of their lifecycle events set to
    ``payload``'s (unchanged, and not re-encoded, when they already match)."""
    first = event_json(events[0]) if events else None
    response = first.get("response") if isinstance(first, dict) else None
    if not isinstance(response, dict) or not _wanted(response, payload):
        return list(events)
    out = []
    for event in events:
        if any(kind in event[:64] for kind in _LIFECYCLE):
            data = event_json(event)
            if isinstance(data, dict) and isinstance(data.get("response"), dict):
                data["response"] = echo(data["response"], payload)
                event = sse(data, event=data.get("type"))
        out.append(event)
    return out


def _wanted(body: Mapping[str, Any], payload: Mapping[str, Any]) -> Body:
    """The echoed fields whose value in ``body`` is not the caller's."""
    wanted = {}
    for name, default in ECHOED.items():
        if name in body:
            value = payload.get(name)
            value = default if value is None else value
            if body[name] != value:
                wanted[name] = value
    return wanted


class _Events:
    """Numbered ``event: <type>`` events."""

    def __init__(self) -> None:
        self.events: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.events), **fields}
        self.events.append(sse(data, event=kind))

    def added(self, index: int, item: Body) -> None:
        self.add("response.output_item.added", output_index=index, item=item)


def _item(stream: _Events, index: int, item: Body) -> None:
    kind = item.get("type")
    where = {"item_id": item.get("id"), "output_index": index}
    skeleton = dict(item)
    if "status" in item:
        skeleton["status"] = "in_progress"
    if kind == "message":
        stream.added(index, {**skeleton, "content": []})
        for position, part in enumerate(item.get("content") or []):
            _message_part(stream, where, position, part)
    elif kind == "reasoning":
        skeleton["summary"] = []
        if isinstance(item.get("content"), list):
            skeleton["content"] = []
        stream.added(index, skeleton)
        _reasoning(stream, where, item)
    elif kind == "function_call":
        arguments = item.get("arguments") or ""
        stream.added(index, {**skeleton, "arguments": ""})
        if arguments:
            stream.add("response.function_call_arguments.delta", **where, delta=arguments)
        stream.add("response.function_call_arguments.done", **where, name=item.get("name"),
                   arguments=arguments)  # fmt: skip
    elif kind == "custom_tool_call":
        text = item.get("input") or ""
        stream.added(index, {**skeleton, "input": ""})
        if text:
            stream.add("response.custom_tool_call_input.delta", **where, delta=text)
        stream.add("response.custom_tool_call_input.done", **where, input=text)
    else:  # a hosted tool call or another item: whole
        stream.added(index, skeleton)
    stream.add("response.output_item.done", output_index=index, item=item)


def _message_part(stream: _Events, where: Body, position: int, part: Body) -> None:
    at = {**where, "content_index": position}
    kind = part.get("type")
    if kind == "output_text":
        text, logprobs = part.get("text") or "", part.get("logprobs") or []
        skeleton = {**part, "text": "", "annotations": []}
        if "logprobs" in part:
            skeleton["logprobs"] = []
        stream.add("response.content_part.added", **at, part=skeleton)
        if text:
            stream.add("response.output_text.delta", **at, delta=text, logprobs=logprobs)
        for number, annotation in enumerate(part.get("annotations") or []):
            stream.add("response.output_text.annotation.added", **at, annotation_index=number,
                       annotation=annotation)  # fmt: skip
        stream.add("response.output_text.done", **at, text=text, logprobs=logprobs)
    elif kind == "refusal":
        text = part.get("refusal") or ""
        stream.add("response.content_part.added", **at, part={**part, "refusal": ""})
        if text:
            stream.add("response.refusal.delta", **at, delta=text)
        stream.add("response.refusal.done", **at, refusal=text)
    else:
        stream.add("response.content_part.added", **at, part=part)
    stream.add("response.content_part.done", **at, part=part)


def _reasoning(stream: _Events, where: Body, item: Body) -> None:
    for number, part in enumerate(item.get("summary") or []):
        at = {**where, "summary_index": number}
        text = part.get("text") or ""
        stream.add("response.reasoning_summary_part.added", **at, part={**part, "text": ""})
        if text:
            stream.add("response.reasoning_summary_text.delta", **at, delta=text)
        stream.add("response.reasoning_summary_text.done", **at, text=text)
        stream.add("response.reasoning_summary_part.done", **at, part=part)
    for number, part in enumerate(item.get("content") or []):
        at = {**where, "content_index": number}
        text = part.get("text") or ""
        if text:
            stream.add("response.reasoning_text.delta", **at, delta=text)
        stream.add("response.reasoning_text.done", **at, text=text)
