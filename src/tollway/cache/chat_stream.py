"""OpenAI chat and (legacy) completions answers: whole body <-> chunk stream.

A body becomes the chunks OpenAI would stream for it
(https://platform.openai.com/docs/api-reference/chat-streaming): per choice, one chunk
with the role, one with the whole content, refusal and every other message field (e.g.
``reasoning_content``, ``annotations``) and the logprobs, one per tool call, one with
the ``finish_reason``; then the usage chunk (empty ``choices``) when the client asked for it
(``stream_options.include_usage``, and then every chunk has ``"usage": null``), and
``data: [DONE]``. Chunks carry the body's id, created time and model.

Chunks become a body the way the SDKs accumulate them: strings concatenated, objects
merged, list entries with an ``index`` merged by it (tool calls), other lists extended;
``role``, ``type``, ``id`` and ``index`` are replaced, not concatenated. A stream without
``[DONE]``, with an error chunk or with a choice that never finished is no answer (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.metering.stream_meter import StreamMeter, event_data
from tollway.translate.base import Body, sse

DONE = b"data: [DONE]\n\n"
_REPLACED = frozenset({"role", "type", "id", "index"})
# Top-level fields every chunk repeats (the rest of the body belongs to the whole form).
_CHUNK_FIELDS = ("id", "created", "model", "service_tier", "system_fingerprint")


def chat_events(body: Body, include_usage: bool) -> list[bytes]:
    """The ``chat.completion.chunk`` stream of a ``chat.completion`` body."""
    head = _head(body, "chat.completion.chunk")
    events: list[bytes] = []

    def chunk(choice: Body) -> bytes:
        return _chunk(head, [choice], include_usage)

    for choice in body.get("choices") or []:
        index = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        calls = message.pop("tool_calls", None) or []
        logprobs = choice.get("logprobs")
        # The role alone first: the SDKs copy a choice's first chunk whole and then fold
        # its logprobs in again, so the logprobs must come in a later chunk.
        events.append(chunk(_choice(index, {"role": message.pop("role", "assistant")})))
        if message or logprobs is not None:
            events.append(chunk(_choice(index, message, logprobs)))
        for position, call in enumerate(calls):
            events.append(chunk(_choice(index, {"tool_calls": [{"index": position, **call}]})))
        events.append(chunk(_choice(index, {}, None, choice.get("finish_reason"))))
    return _end(events, head, body.get("usage"), include_usage)


def completion_events(body: Body, include_usage: bool) -> list[bytes]:
    """The stream of a ``text_completion`` body: one chunk per choice."""
    head = _head(body, "text_completion")
    events = [_chunk(head, [dict(choice)], False) for choice in body.get("choices") or []]
    return _end(events, head, body.get("usage"), include_usage)


def chat_body(events: Sequence[bytes], usage: Body) -> Body | None:
    """The ``chat.completion`` a complete chunk stream adds up to (``usage`` when the
    stream carried none), or None when the stream is not a whole answer."""
    body = _accumulate(events, "chat.completion.chunk", usage, _chat_choice)
    for choice in body["choices"] if body is not None else []:
        for call in choice["message"].get("tool_calls") or []:
            if isinstance(call, dict):
                call.pop("index", None)  # a whole body's tool calls have none
    return body


class _Text:
    """A string arriving in pieces, joined once at the end (concatenating as each piece
    comes would copy a long answer once per chunk)."""

    __slots__ = ("parts",)

    def __init__(self, first: str) -> None:
        self.parts = [first]


def _joined(value: Any) -> Any:
    """``value`` with every ``_Text`` in it made a string."""
    if isinstance(value, _Text):
        return "".join(value.parts)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, _Text | dict | list):
                value[key] = _joined(item)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            if isinstance(item, _Text | dict | list):
                value[position] = _joined(item)
    return value


def completion_body(events: Sequence[bytes], usage: Body) -> Body | None:
    """The ``text_completion`` a complete chunk stream adds up to, or None."""
    return _accumulate(events, "text_completion", usage, _completion_choice)


def with_usage(
    events: Sequence[bytes], endpoint: Endpoint, include_usage: bool, usage: Body
) -> list[bytes]:
    """Recorded chunks for a client that does (or does not) want the usage chunk."""
    last = _json(events[-2]) if len(events) >= 2 else None
    has = isinstance(last, dict) and isinstance(last.get("usage"), dict)
    if has == include_usage:
        return list(events)
    if include_usage:
        first = next((c for e in events if isinstance(c := _json(e), dict) and c.get("id")), {})
        head = _head(first, first.get("object", "chat.completion.chunk"))
        return [*events[:-1], _chunk(head, [], True, usage), events[-1]]
    # What the relay does when the gateway added include_usage the client did not ask for.
    meter = StreamMeter(endpoint, strip_usage=True, retain_bytes=0)
    return [out for event in events if (out := meter.observe(event)) is not None]


# ---------------------------------------------------------------------------- building


def _head(body: Body, kind: str) -> Body:
    head = {name: body[name] for name in _CHUNK_FIELDS if name in body}
    return {"id": head.pop("id", None), "object": kind, **head}


def _choice(index: int, delta: Body, logprobs: Any = None, finish: Any = None) -> Body:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def _chunk(head: Body, choices: list[Body], include_usage: bool, usage: Any = None) -> bytes:
    chunk = {**head, "choices": choices}
    if include_usage:
        chunk["usage"] = usage
    return sse(chunk)


def _end(events: list[bytes], head: Body, usage: Any, include_usage: bool) -> list[bytes]:
    if include_usage:
        events.append(_chunk(head, [], True, usage))
    events.append(DONE)
    return events


# ------------------------------------------------------------------------ accumulating


def _accumulate(events: Sequence[bytes], kind: str, usage: Body, fold: Any) -> Body | None:
    """Fold the chunks (of type ``kind``) of a complete stream into a body of its own."""
    head: Body | None = None
    choices: dict[int, Body] = {}
    done = False
    for event in events:
        data = _data(event)
        if not data:
            continue  # a comment or keep-alive
        if done:
            return None  # nothing may follow [DONE]
        if data.strip() == b"[DONE]":
            done = True
            continue
        chunk = _loads(data)
        if not isinstance(chunk, dict) or chunk.get("error") is not None:
            return None
        if chunk.get("object", kind) != kind:
            continue  # not a chunk: e.g. Azure's content-filter notes (the SDKs skip them)
        if head is None:
            head = {name: chunk[name] for name in _CHUNK_FIELDS if name in chunk}
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or not isinstance(choice.get("index", 0), int):
                return None
            fold(choices, choice)
    if not done or head is None or not choices:
        return None
    if any(choice["finish_reason"] is None for choice in choices.values()):
        return None
    ordered = [_joined(choices[index]) for index in sorted(choices)]
    whole = "chat.completion" if kind == "chat.completion.chunk" else kind
    return {"id": head.pop("id", None), "object": whole, **head, "choices": ordered, "usage": usage}


def _chat_choice(choices: dict[int, Body], choice: Body) -> None:
    index = choice.get("index", 0)
    slot = choices.get(index)
    if slot is None:
        message: Body = {"role": "assistant", "content": None, "refusal": None}
        slot = choices[index] = {"index": index, "message": message, "logprobs": None}
        slot["finish_reason"] = None
    delta = choice.get("delta")
    if isinstance(delta, dict):
        _merge(slot["message"], delta)
    _fold_common(slot, choice)


def _completion_choice(choices: dict[int, Body], choice: Body) -> None:
    index = choice.get("index", 0)
    slot = choices.get(index)
    if slot is None:
        slot = choices[index] = {"text": _Text(""), "index": index, "logprobs": None}
        slot["finish_reason"] = None
    text = choice.get("text")
    if isinstance(text, str):
        slot["text"].parts.append(text)
    _fold_common(slot, choice)


def _fold_common(slot: Body, choice: Body) -> None:
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        if slot["logprobs"] is None:
            slot["logprobs"] = {}
        _merge(slot["logprobs"], logprobs)
    if choice.get("finish_reason") is not None:
        slot["finish_reason"] = choice["finish_reason"]


def _merge(into: Body, delta: Body) -> None:
    """Fold one delta object into the accumulated object."""
    for key, value in delta.items():
        current = into.get(key)
        if value is None:
            into.setdefault(key, None)
        elif isinstance(value, dict):
            fields = current if isinstance(current, dict) else {}
            _merge(fields, value)
            into[key] = fields
        elif isinstance(value, list):
            items = current if isinstance(current, list) else []
            _merge_list(items, value)
            into[key] = items
        elif isinstance(value, str) and key not in _REPLACED and isinstance(current, str | _Text):
            if isinstance(current, str):
                current = into[key] = _Text(current)
            current.parts.append(value)
        else:
            into[key] = value


def _merge_list(into: list[Any], items: list[Any]) -> None:
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int):
            into.append(item)
            continue
        for existing in into:
            if isinstance(existing, dict) and existing.get("index") == index:
                _merge(existing, item)
                break
        else:
            entry: Body = {}
            _merge(entry, item)
            into.append(entry)


def _data(event: bytes) -> bytes:
    """The data of an SSE event; at once for the usual one-line ``data:`` event."""
    if event.startswith(b"data: "):
        data = event[6:].rstrip(b"\r\n")
        if b"\n" not in data and b"\r" not in data:
            return data
    return event_data(event)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _json(event: bytes) -> Any:
    return _loads(_data(event))
