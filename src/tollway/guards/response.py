"""Screening an answer on its way to the client: whole, or event by event.

A ``ResponseScreen`` sees the answer in the client's dialect (after translation), so
one screen serves every provider. It reads every text the model wrote: content and
refusals, reasoning and thinking, tool-call arguments and tool inputs (``texts.py``).

A streamed text (``streamed.py``) gets its own ``StreamRedactor`` per guard action:
``redact`` rewrites the deltas (holding back the last few hundred characters until
they are final, see ``redact.py``), ``flag`` runs the same scan on a copy and only
counts. Held text is released where its text ends (a choice's ``finish_reason``, a
Messages ``content_block_stop``, a Responses ``response.*.done``), as one more delta
when the ending event carries none, or at the end of the stream.

Events that carry a finished text or object whole (Responses ``*.done`` events,
``response.output_item.*``, ``response.completed``; Messages ``content_block_start``)
have it redacted whole, which gives the same text as the deltas. A chunk without a
choice or block ``index`` is index 0 (as some OpenAI-compatible servers send it); an id
of any JSON type names its text. An event the screen does not understand passes
unchanged; so does one with nothing to change, byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.guards.base import Action, Finding, TextGuard
from tollway.guards.redact import redact, resolve
from tollway.guards.runner import THREAD_BYTES, Decision, decision
from tollway.guards.streamed import (
    CHAT_FIELDS,
    MESSAGE_DELTAS,
    RESPONSES_TEXTS,
    StreamedText,
    key,
    parse,
    render,
)
from tollway.guards.texts import TextSlot, answer_texts, response_texts
from tollway.sse import EventSplitter

_DONE = b"[DONE]"
# Endpoints whose answers hold text a model wrote (embeddings and counts do not).
SCREENED = frozenset(
    {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.RESPONSES, Endpoint.MESSAGES}
)
# Responses events that carry one finished piece of the answer whole, and its field.
_RESPONSES_PIECES = {
    "response.output_item.added": "item",
    "response.output_item.done": "item",
    "response.content_part.added": "part",
    "response.content_part.done": "part",
    "response.reasoning_summary_part.added": "part",
    "response.reasoning_summary_part.done": "part",
}
Found = dict[tuple[str, Action], list[Finding]]  # (guard, action) -> its findings


class ResponseScreen:
    """Redacts or flags one answer; its decisions are complete once the answer is."""

    def __init__(self, endpoint: Endpoint, guards: Sequence[tuple[TextGuard, Action]]) -> None:
        self.endpoint = endpoint
        self._redacting = [g for g, action in guards if action is Action.REDACT]
        self._flagging = [g for g, action in guards if action is Action.FLAG]
        self._texts: dict[Hashable, StreamedText] = {}
        self._closed: list[StreamedText] = []
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
        changed = self._redact_slots(response_texts(self.endpoint, parsed), found)
        self._whole = [decision(name, action, "response", f) for (name, action), f in found.items()]
        return orjson.dumps(parsed) if changed else body

    async def whole_async(self, body: bytes) -> bytes:
        """``whole``, in a worker thread for an answer larger than ``THREAD_BYTES``."""
        if len(body) > THREAD_BYTES:
            return await asyncio.to_thread(self.whole, body)
        return self.whole(body)

    def _redact_slots(self, slots: list[TextSlot], found: Found | None) -> bool:
        """Redact (and, when ``found`` is given, count and flag) the slots in place;
        whether anything changed."""
        counting = found is not None and bool(self._flagging)
        if not slots or not (self._redacting or counting):
            return False
        texts = [slot.get() for slot in slots]
        if found is not None:
            for guard in self._flagging:
                for hits in guard.scan_all(texts):
                    found.setdefault((guard.name, Action.FLAG), []).extend(hits)
        scans = [guard.scan_all(texts) for guard in self._redacting]
        changed = False
        for i, slot in enumerate(slots):
            chosen = resolve(hit for scan in scans for hit in scan[i])
            if not chosen:
                continue
            if found is not None:
                for hit in chosen:
                    found.setdefault((hit.guard, Action.REDACT), []).append(hit)
            slot.set(redact(texts[i], chosen, self._redacting))
            changed = True
        return changed

    def _redact_in(self, holder: dict[str, Any], field: str) -> bool:
        """Redact what the model wrote in ``holder[field]``, a piece of the answer that an
        event carries whole."""
        return bool(self._redacting) and self._redact_slots(answer_texts(holder, field), None)

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
        for name in list(self._texts):
            text = self._texts[name]
            held = self._finish(name)
            if held:
                out.append(self._release(text, held, None))
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

    def _feed(
        self, holder: dict[str, Any], field: str, name: Hashable, kind: str, where: dict[str, Any]
    ) -> bool:
        """Feed ``holder[field]`` (a delta) to its text; whether the delta changed."""
        text = self._texts.get(name)
        if text is None:
            text = StreamedText(self._redacting, self._flagging, kind, where)
            self._texts[name] = text
        delta = holder[field]
        new = text.feed(delta)
        if new == delta:
            return False
        holder[field] = new
        return True

    def _finish(self, name: Hashable) -> str:
        text = self._texts.pop(name, None)
        if text is None:
            return ""
        self._closed.append(text)
        return text.flush()

    def _event(self, event: bytes) -> list[bytes]:
        name, data = parse(event)
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

    # -- OpenAI chat and completions ----------------------------------------------------

    def _chat(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return [event]
        self._template = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if self.endpoint is Endpoint.COMPLETIONS:
                if isinstance(choice.get("text"), str):
                    changed |= self._feed(choice, "text", (key(index), "text"), "text", {})
            elif isinstance(choice.get("delta"), dict):
                changed |= self._chat_delta(index, choice["delta"])
            if choice.get("finish_reason") is not None:
                changed |= self._chat_finish(choice, index)
        return [render(name, obj)] if changed else [event]

    def _chat_delta(self, index: Any, delta: dict[str, Any]) -> bool:
        choice = key(index)
        changed = False
        for field in CHAT_FIELDS:
            if isinstance(delta.get(field), str):
                changed |= self._feed(delta, field, (choice, field), field, {})
        calls = delta.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else ()):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                tool = call.get("index", j)
                called = (choice, "tool_calls", key(tool))
                changed |= self._feed(function, "arguments", called, "tool_calls", {"index": tool})
        function = delta.get("function_call")
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            legacy = (choice, "function_call")
            changed |= self._feed(function, "arguments", legacy, "function_call", {})
        return changed

    def _chat_finish(self, choice: dict[str, Any], index: Any) -> bool:
        """Release the held texts of a finished choice into its last chunk."""
        changed = False
        for name in [n for n in self._texts if isinstance(n, tuple) and n[0] == key(index)]:
            text = self._texts[name]
            rest = self._finish(name)
            if not rest:
                continue
            if self.endpoint is Endpoint.COMPLETIONS:
                holder = choice
            elif isinstance(choice.get("delta"), dict):
                holder = choice["delta"]
            else:
                holder = choice["delta"] = {}
            _put(holder, text, rest)
            changed = True
        return changed

    def _chat_rest(self) -> list[bytes]:
        """Text still held at ``[DONE]`` (no finish_reason came): one chunk per choice."""
        rests: dict[Hashable, tuple[Any, dict[str, Any]]] = {}
        for name in list(self._texts):
            text = self._texts[name]
            rest = self._finish(name)
            if rest and isinstance(name, tuple):
                index, holder = rests.setdefault(name[0], (_index(name[0]), {}))
                _put(holder, text, rest)
        out = []
        for index, holder in rests.values():
            if self.endpoint is Endpoint.CHAT_COMPLETIONS:
                choice: dict[str, Any] = {"index": index, "delta": holder}
            else:
                choice = {"index": index, **holder}
            choice["finish_reason"] = None
            out.append(render(None, {**self._template, "choices": [choice]}))
        return out

    # -- Anthropic Messages -------------------------------------------------------------

    def _messages(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        index = obj.get("index", 0)
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return [event]
            kind = delta.get("type")
            field = MESSAGE_DELTAS.get(kind) if isinstance(kind, str) else None
            if field is not None and isinstance(delta.get(field), str):
                assert isinstance(kind, str)
                changed = self._feed(delta, field, key(index), kind, {"index": index})
            else:  # citations and deltas of new kinds: what they carry, whole
                changed = self._redact_in(obj, "delta")
        elif kind == "content_block_stop":
            text = self._texts.get(key(index))
            rest = self._finish(key(index))
            return [self._release(text, rest, None), event] if text and rest else [event]
        elif kind == "content_block_start":
            changed = self._redact_in(obj, "content_block")
        elif kind == "message_start" and isinstance(obj.get("message"), dict):
            changed = self._redact_in(obj["message"], "content")
        else:
            return [event]
        return [render(name, obj)] if changed else [event]

    # -- OpenAI Responses ---------------------------------------------------------------

    def _responses(self, event: bytes, name: bytes | None, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        family, _, phase = (
            kind.removeprefix("response.").rpartition(".")
            if isinstance(kind, str)
            else ("", "", "")
        )
        spec = RESPONSES_TEXTS.get(family)
        out: list[bytes] = []
        changed = False
        if spec is not None and phase in ("delta", "done"):
            field, ids = spec
            text_name = (family, *(key(obj.get(k)) for k in ids))
            if phase == "delta":
                if isinstance(obj.get("delta"), str):
                    where = {k: obj[k] for k in ids if k in obj}
                    changed = self._feed(obj, "delta", text_name, family, where)
            else:
                text = self._texts.get(text_name)
                rest = self._finish(text_name)
                if text is not None and rest:
                    out.append(self._release(text, rest, obj))
                changed = self._redact_in(obj, field) or bool(rest)
        elif isinstance(kind, str) and kind in _RESPONSES_PIECES:
            changed = self._redact_in(obj, _RESPONSES_PIECES[kind])
        elif isinstance(obj.get("response"), dict):  # created, completed, incomplete, ...
            changed = self._redact_in(obj["response"], "output")
        if self._sequence_shift and isinstance(obj.get("sequence_number"), int):
            obj["sequence_number"] += self._sequence_shift
            changed = True
        out.append(render(name, obj) if changed else event)
        return out

    def _release(self, text: StreamedText, rest: str, at: dict[str, Any] | None) -> bytes:
        """One more delta event with a text's held rest. A Responses one is numbered in
        sequence before the event ``at`` (whose number, and later ones, move up by one)."""
        if self.endpoint is Endpoint.MESSAGES:
            delta = {"type": text.kind, MESSAGE_DELTAS[text.kind]: rest}
            extra = {"type": "content_block_delta", **text.where, "delta": delta}
            return render(b"content_block_delta", extra)
        kind = f"response.{text.kind}.delta"
        extra = {"type": kind, **text.where, "delta": rest}
        if text.kind == "output_text":
            extra["logprobs"] = []
        if at is not None and isinstance(at.get("sequence_number"), int):
            extra["sequence_number"] = at["sequence_number"] + self._sequence_shift
            self._sequence_shift += 1
        return render(kind.encode(), extra)


def _put(holder: dict[str, Any], text: StreamedText, rest: str) -> None:
    """Append a chat text's held rest to a choice's delta (or completion choice)."""
    if text.kind == "tool_calls":
        calls = holder.get("tool_calls")
        if not isinstance(calls, list):
            calls = holder["tool_calls"] = []
        index = text.where["index"]
        call = next((c for c in calls if isinstance(c, dict) and c.get("index") == index), None)
        if call is None:
            call = {"index": index}
            calls.append(call)
        holder = call
    if text.kind in ("tool_calls", "function_call"):
        function = holder.get("function" if text.kind == "tool_calls" else "function_call")
        if not isinstance(function, dict):
            function = holder["function" if text.kind == "tool_calls" else "function_call"] = {}
        holder, field = function, "arguments"
    else:
        field = text.kind
    before = holder.get(field)
    holder[field] = (before if isinstance(before, str) else "") + rest


def _index(choice: Hashable) -> Any:
    """A choice's index as it came (``key`` turned an object or list into JSON)."""
    return orjson.loads(choice) if isinstance(choice, bytes) else choice
