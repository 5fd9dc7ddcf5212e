"""A cached answer, kept so that it can be given again whole or streamed.

An entry holds the answer exactly as the client received it (after any translation):
the whole JSON body when it was answered whole, or the client-facing SSE events when it
was streamed. Either form replays as the other, in the endpoint's dialect (see
``chat_stream``, ``responses_stream``, ``messages_stream``): a whole body becomes a
stream the official SDKs rebuild the same message from, recorded events add up to the
body. Embeddings have no stream form.

Only whole answers are entries: ``from_body`` and ``from_stream`` return None for an
error status, a body that is not an answer, or a stream that failed or never ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from tollway.cache.chat_stream import (
    chat_body,
    chat_events,
    completion_body,
    completion_events,
    with_usage,
)
from tollway.cache.messages_stream import message_body, message_events
from tollway.cache.responses_stream import echo, echo_events, response_body, response_events
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.validate import Payload
from tollway.metering.usage import Usage
from tollway.translate.base import Body
from tollway.translate.openai_chat import chat_usage, wants_usage

JSON = "application/json"
STREAMED = frozenset(
    {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.RESPONSES, Endpoint.MESSAGES}
)
CACHEABLE = STREAMED | {Endpoint.EMBEDDINGS}
# Rough bytes an entry and each event cost beyond their data (objects, references).
ENTRY_OVERHEAD = 256
EVENT_OVERHEAD = 64
# What a conversion raises on a shape it cannot read (only a corrupted store has those).
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError)


class Tokens(NamedTuple):
    """The answer's token counts, for the spend record of each call it serves."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @classmethod
    def of(cls, usage: Usage | None) -> Tokens:
        """The counts of ``usage`` (none: zeros), flagged as estimated unless the
        upstream reported them and they were valid."""
        if usage is None:
            return cls(estimated=True)
        return cls(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.cache_write_1h_tokens,
            usage.reasoning_tokens,
            usage.estimated or usage.problem is not None,
        )

    def usage(self) -> Usage:
        """A fresh Usage with these counts."""
        return Usage(*self)


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer: its body or its client-facing stream events, and its usage."""

    endpoint: Endpoint
    tokens: Tokens
    created_at: float  # Unix time the answer was cached
    body: bytes | None = None  # the whole JSON answer, when it was answered whole
    events: tuple[bytes, ...] | None = None  # the client's SSE events, when streamed
    status: int = 200
    content_type: str = JSON  # of the whole form

    @property
    def size(self) -> int:
        """Approximate bytes held: the data plus per-object overhead."""
        data = len(self.body) if self.body is not None else 0
        events = self.events or ()
        data += sum(len(event) + EVENT_OVERHEAD for event in events)
        return ENTRY_OVERHEAD + data

    def whole(self, payload: Payload) -> bytes:
        """The whole JSON body for this call's client; ValueError when the entry cannot be
        replayed (treat it as a miss)."""
        if self.body is not None and self.endpoint is not Endpoint.RESPONSES:
            return self.body
        try:
            body = _parse(self.body) if self.body is not None else self._accumulated()
            if self.endpoint is Endpoint.RESPONSES:
                echoed = echo(body, payload)
                if echoed is body and self.body is not None:
                    return self.body
                body = echoed
        except _SHAPE_ERRORS as error:
            raise ValueError(f"cache entry cannot be replayed whole: {error}") from None
        return orjson.dumps(body)

    def stream(self, payload: Payload) -> list[bytes]:
        """The SSE events for this call's client (its ``stream_options`` honoured);
        ValueError when the entry cannot be replayed (treat it as a miss)."""
        endpoint = self.endpoint
        if endpoint not in STREAMED:
            raise ValueError(f"{endpoint.value} answers have no stream form")
        include_usage = wants_usage(payload)
        try:
            if self.events is not None:
                if endpoint is Endpoint.RESPONSES:
                    return echo_events(self.events, payload)
                if endpoint is Endpoint.MESSAGES:
                    return list(self.events)
                return with_usage(self.events, endpoint, include_usage, self.usage_object())
            body = _parse(self.body or b"")
            if endpoint is Endpoint.CHAT_COMPLETIONS:
                return chat_events(body, include_usage)
            if endpoint is Endpoint.COMPLETIONS:
                return completion_events(body, include_usage)
            if endpoint is Endpoint.RESPONSES:
                return response_events(echo(body, payload))
            return message_events(body)
        except _SHAPE_ERRORS as error:
            raise ValueError(f"cache entry cannot be replayed as a stream: {error}") from None

    def cut_short(self) -> bool:
        """Whether the answer stopped at its output limit (``length``, ``max_tokens``, an
        incomplete Responses answer) rather than where the model ended it; an unreadable
        entry counts as cut short."""
        try:
            body = _parse(self.body) if self.body is not None else self._accumulated()
        except (*_SHAPE_ERRORS, ValueError):
            return True
        if self.endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
            choices = body.get("choices") or []
            return any(c.get("finish_reason") in (None, "length") for c in choices)
        if self.endpoint is Endpoint.RESPONSES:
            return body.get("status") != "completed"
        if self.endpoint is Endpoint.MESSAGES:
            return body.get("stop_reason") in (None, "max_tokens")
        return False

    def _accumulated(self) -> Body:
        body = accumulate(self.endpoint, self.events or (), self.usage_object())
        if body is None:
            raise ValueError("the recorded stream is not a whole answer")
        return body

    def usage_object(self) -> Body:
        """The counts as an OpenAI ``usage`` object (for a stream recorded without one)."""
        return chat_usage(self.tokens.usage(), reasoning=self.tokens.reasoning_tokens > 0)


def from_body(
    endpoint: Endpoint,
    body: bytes,
    usage: Usage | None,
    content_type: str = JSON,
    status: int = 200,
    now: float | None = None,
) -> Entry | None:
    """An entry for a whole answer, or None when it is not one to keep."""
    if status != 200 or endpoint not in CACHEABLE or not _is_json(content_type):
        return None
    if endpoint is Endpoint.EMBEDDINGS:
        # Megabytes of floats: not parsed here (the upstream's answer was checked).
        if body.lstrip()[:1] != b"{":
            return None
    else:
        try:
            parsed = _parse(body)
        except ValueError:
            return None
        if not answered(endpoint, parsed):
            return None
    created = time.time() if now is None else now
    return Entry(endpoint, Tokens.of(usage), created, body=body, content_type=content_type)


def from_stream(
    endpoint: Endpoint,
    events: list[bytes] | tuple[bytes, ...],
    usage: Usage | None,
    status: int = 200,
    now: float | None = None,
) -> Entry | None:
    """An entry for a streamed answer (its client-facing events, in order), or None when
    the stream failed, never ended or is not one to keep."""
    if status != 200 or endpoint not in STREAMED or not events:
        return None
    created = time.time() if now is None else now
    entry = Entry(endpoint, Tokens.of(usage), created, events=tuple(events))
    try:
        if accumulate(endpoint, entry.events or (), entry.usage_object()) is None:
            return None
    except _SHAPE_ERRORS:
        return None
    return entry


def accumulate(endpoint: Endpoint, events: tuple[bytes, ...], usage: Body) -> Body | None:
    """The whole body of recorded events (``usage`` when they carry none), or None."""
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        return chat_body(events, usage)
    if endpoint is Endpoint.COMPLETIONS:
        return completion_body(events, usage)
    if endpoint is Endpoint.RESPONSES:
        return response_body(events)
    if endpoint is Endpoint.MESSAGES:
        return message_body(events)
    return None


def answered(endpoint: Endpoint, body: Body) -> bool:
    """Is this 200 body a whole answer (not an error, not still running)?"""
    if body.get("error") is not None:
        return False
    if endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
        choices = body.get("choices")
        return isinstance(choices, list) and bool(choices) and all(map(_is_object, choices))
    if endpoint is Endpoint.RESPONSES:
        return body.get("status") in ("completed", "incomplete")
    if endpoint is Endpoint.MESSAGES:
        return body.get("type") == "message" and isinstance(body.get("content"), list)
    return endpoint is Endpoint.EMBEDDINGS


def _parse(body: bytes) -> Body:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("the body is not a JSON object")
    return parsed


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == JSON
