"""Screening an answer on its way to the client: whole, or event by event.

A ``ResponseScreen`` sees the answer in the client's dialect (after translation), so
one screen serves every provider. Each text a model writes (a choice's content, a
Messages text block, a Responses output text) gets its own ``StreamRedactor`` per
guard action: ``redact`` rewrites the deltas (holding back the last few hundred
characters until they are final, see ``redact.py``), ``flag`` runs the same scan on a
copy and only counts. Held text is released where its text ends (a choice's
``finish_reason``, a Messages ``content_block_stop``, a Responses
``response.output_text.done``), as one more delta when the ending event carries none.

Events that repeat a finished text whole (Responses ``*.done`` events and
``response.completed``) have it redacted whole, which gives the same text as the deltas.
An event the screen does not understand passes unchanged; so does one with nothing to
change, byte for byte.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.guards.base import Action, Finding, TextGuard
from tollway.guards.redact import StreamRedactor, redact, resolve
from tollway.guards.runner import Decision, decision
from tollway.guards.texts import response_texts
from tollway.sse import EventSplitter

_DONE = b"[DONE]"
# Endpoints whose answers hold text a model wrote (embeddings and counts do not).
SCREENED = frozenset(
    {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.RESPONSES, Endpoint.MESSAGES}
)
_RESPONSES_KEY = ("item_id", "output_index", "content_index")
Found = dict[tuple[str, Action], list[Finding]]  # (guard, action) -> its findings


class _Text:
    """One text being streamed: a redacting and a flagging scan of it."""

    __slots__ = ("flag", "redact")

    def __init__(self, redacting: list[TextGuard], flagging: list[TextGuard]) -> None:
        self.redact = StreamRedactor(redacting) if redacting else None
        self.flag = StreamRedactor(flagging) if flagging else None

    def feed(self, delta: str) -> str:
        if self.flag is not None:
            self.flag.feed(delta)
        return self.redact.feed(delta) if self.redact is not None else delta

    def flush(self) -> str:
        if self.flag is not None:
            self.flag.flush()
        return self.redact.flush() if self.redact is not None else ""


class ResponseScreen:
    """Redacts or flags one answer; its decisions are complete once the answer is."""

    def __init__(self, endpoint: Endpoint, guards: Sequence[tuple[TextGuard, Action]]) -> None:
        self.endpoint = endpoint
        self._redacting = [g for g, action in guards if action is Action.REDACT]
        self._flagging = [g for g, action in guards if action is Action.FLAG]
        self._texts: dict[Hashable, _Text] = {}
        self._closed: list[_Text] = []
        self._splitter = EventSplitter()
        self._template: dict[str, Any] = {}  # the last chat chunk's envelope
        self._sequence_shift = 0  # Responses events inserted so far
        self._whole: list[Decision] | None = None  # a whole answer's, once screened

    # -- whole answers ----------------------------------------------------------------

    def whole(self, body: bytes) -> bytes:
        """The answer with its texts redacted (unchanged if nothing was found)."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(parsed, dict):
            return body
        found: Found = {}
        changed = self._redact_texts(parsed, found)
        self._whole = [decision(name, action, "response", f) for (name, action), f in found.items()]
        return orjson.dumps(parsed) if changed else body

    def _redact_texts(self, body: dict[str, Any], found: Found | None) -> bool:
        """Redact (and, when ``found`` is given, count and flag) every text of a whole
        answer in place; whether anything changed."""
        changed = False
        for slot in response_texts(self.endpoint, body):
            text = slot.get()
            if found is not None:
                for guard in self._flagging:
                    for hit in guard.scan(text):
                        found.setdefault((guard.name, Action.FLAG), []).append(hit)
            if not self._redacting:
                continue
            chosen = resolve(f for guard in self._redacting for f in guard.scan(text))
            if chosen:
                if found is not None:
                    for hit in chosen:
                        found.setdefault((hit.guard, Action.REDACT), []).append(hit)
                slot.set(redact(text, chosen, self._redacting))
                changed = True
        return changed

    # -- streams ----------------------------------------------------------------------

    def events(self, chunks: list[bytes]) -> list[bytes]:
        """Client events in, screened client events out (possibly more of them)."""
        out: list[bytes] = []
        for chunk in chunks:
            for event in self._splitter.feed(chunk):
                out.extend(self._event(event))
        return out

    def close(self) -> list[bytes]:
        """At the end of the stream (or before its error event): what is still held."""
        rest = self._splitter.rest()
        out = [rest] if rest else []
        if self.endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
            return out + self._chat_rest()
        for key in list(self._texts):
            text = self._finish(key)
            if not text:
                continue
            if self.endpoint is Endpoint.MESSAGES and isinstance(key, int):
                out.append(_message_text(key, text))
            elif isinstance(key, tuple):
                out.append(self._responses_delta(dict(zip(_RESPONSES_KEY, key, strict=True)), text))
        return out

    def decisions(self) -> list[Decision]:
        """What the screen did so far, one decision per guard and action."""
        if self._whole is not None:
            return list(self._whole)
        found: Found = {}
        for text in [*self._closed, *self._texts.values()]:
            for redactor, action in ((text.redact, Action.REDACT), (text.flag, Action.FLAG)):
                for finding in redactor.found if redactor is not None else ():
                    found.setdefault((finding.guard, action), []).append(finding)
        return [decision(name, action, "response", f) for (name, action), f in found.items()]

    def _text(self, key: Hashable) -> _Text:
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = _Text(self._redacting, self._flagging)
        return text

    def _finish(self, key: Hashable) -> str:
        text = self._texts.pop(key, None)
        if text is None:
            return ""
        self._closed.append(text)
        return text.flush()

    def _event(self, event: bytes) -> list[bytes]:
        name, data = _parse(event)
        if data is None:
            return [event]
        if data == _DONE:
            return [*self._chat_rest(), event]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [event]
        if not isinstance(obj, dict):
            return [event]
        if self.endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
            return self._chat(event, name, obj)
        if self.endpoint is Endpoint.MESSAGES:
            return self._messages(event, name, obj)
        if self.endpoint is Endpoint.RESPONSES:
            return self._responses(event, name, obj)
        return [event]

    def _chat(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return [event]
        self._template = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        field = "content" if self.endpoint is Endpoint.CHAT_COMPLETIONS else "text"
        changed = False
        for choice in choices:
            if not isinstance(choice, dict) or not isinstance(choice.get("index"), int):
                continue
            index = choice["index"]
            holder = choice.get("delta") if field == "content" else choice
            if not isinstance(holder, dict):
                holder = None
            if holder is not None and isinstance(holder.get(field), str):
                new = self._text(index).feed(holder[field])
                changed = changed or new != holder[field]
                holder[field] = new
            if choice.get("finish_reason") is not None:
                rest = self._finish(index)
                if rest:
                    if holder is None:
                        holder = choice["delta"] = {}
                    holder[field] = (holder.get(field) or "") + rest
                    changed = True
        return [_render(name, obj)] if changed else [event]

    def _chat_rest(self) -> list[bytes]:
        """Text still held at ``[DONE]`` (no finish_reason came): one chunk per choice."""
        out = []
        for key in list(self._texts):
            rest = self._finish(key)
            if rest and isinstance(key, int):
                if self.endpoint is Endpoint.CHAT_COMPLETIONS:
                    choice: dict[str, Any] = {"index": key, "delta": {"content": rest}}
                else:
                    choice = {"index": key, "text": rest}
                choice["finish_reason"] = None
                out.append(_render(None, {**self._template, "choices": [choice]}))
        return out

    def _messages(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        index = obj.get("index")
        if kind == "content_block_delta" and isinstance(index, int):
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str):
                    new = self._text(index).feed(text)
                    if new != text:
                        delta["text"] = new
                        return [_render(name, obj)]
            return [event]
        if kind == "content_block_stop" and isinstance(index, int):
            rest = self._finish(index)
            return [_message_text(index, rest), event] if rest else [event]
        return [event]

    def _responses(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        out: list[bytes] = []
        changed = False
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            new = self._text(_responses_key(obj)).feed(obj["delta"])
            changed = new != obj["delta"]
            obj["delta"] = new
        elif kind == "response.output_text.done":
            rest = self._finish(_responses_key(obj))
            if rest:
                out.append(self._responses_delta(obj, rest))
            changed = self._redact_field(obj, "text") or bool(rest)
        elif kind == "response.content_part.done" and isinstance(obj.get("part"), dict):
            changed = self._redact_field(obj["part"], "text")
        elif kind == "response.output_item.done" and isinstance(obj.get("item"), dict):
            changed = self._redact_texts({"output": [obj["item"]]}, None)
        elif isinstance(obj.get("response"), dict):  # created, completed, incomplete, ...
            changed = self._redact_texts(obj["response"], None)
        if self._sequence_shift and isinstance(obj.get("sequence_number"), int):
            obj["sequence_number"] += self._sequence_shift
            changed = True
        out.append(_render(name, obj) if changed else event)
        return out

    def _responses_delta(self, where: dict[str, Any], text: str) -> bytes:
        """One more ``output_text.delta`` (held text released), numbered in sequence:
        later events' numbers move up by one."""
        extra: dict[str, Any] = {"type": "response.output_text.delta"}
        extra.update({k: where[k] for k in _RESPONSES_KEY if where.get(k) is not None})
        extra.update(delta=text, logprobs=[])
        if isinstance(where.get("sequence_number"), int):
            extra["sequence_number"] = where["sequence_number"] + self._sequence_shift
            self._sequence_shift += 1
        return _render(b"response.output_text.delta", extra)

    def _redact_field(self, holder: dict[str, Any], field: str) -> bool:
        text = holder.get(field)
        if not isinstance(text, str) or not self._redacting:
            return False
        hits = [f for guard in self._redacting for f in guard.scan(text)]
        if not hits:
            return False
        holder[field] = redact(text, resolve(hits), self._redacting)
        return True


def _responses_key(obj: dict[str, Any]) -> Hashable:
    return tuple(obj.get(k) for k in _RESPONSES_KEY)


def _message_text(index: int, text: str) -> bytes:
    delta = {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }
    return _render(b"content_block_delta", delta)


def _parse(event: bytes) -> tuple[bytes | None, bytes | None]:
    """An event's name and data (data lines joined), or (None, None) without data."""
    name: bytes | None = None
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data) if data else None


def _render(name: bytes | None, obj: dict[str, Any]) -> bytes:
    head = b"event: " + name + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"
