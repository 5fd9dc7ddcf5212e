"""Read usage out of a stream as its events pass, without changing what the client gets.

Only events that can carry usage are parsed (a byte check first), so the cost per event is
a few substring tests. Shapes:

- OpenAI chat/completions: with ``stream_options.include_usage`` a last chunk with empty
  ``choices`` carries ``usage`` and every other chunk has ``"usage": null``
  (https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options).
  When the gateway added that option the client did not ask for, both are taken out again.
- OpenAI Responses: ``response.completed`` (or ``incomplete``/``failed``) carries usage.
- Anthropic: ``message_start`` carries input usage, ``message_delta`` the running output
  count (https://docs.anthropic.com/en/docs/build-with-claude/streaming).

The events that passed are kept only to estimate output tokens when a stream is cut
before the upstream reported usage. A stream may run for hours, so what is kept is
bounded: events are kept until they total ``retain_bytes`` (4 MiB by default); later
ones are only counted (``dropped_bytes``). ``scale_estimate`` then extends a token count
of the kept text to the whole stream in proportion to bytes, assuming the dropped events
carry text as densely as the kept ones (if none could be kept, a token per 4 bytes).
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Counts, Usage, from_anthropic, from_openai, from_responses

_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null|"usage"\s*:\s*null\s*,?')
_TEXT_KEYS = frozenset(
    {"content", "text", "partial_json", "arguments", "delta", "refusal", "thinking"}
)
_RESPONSES_END = (b"response.completed", b"response.incomplete", b"response.failed")
RETAIN_BYTES = 4 * 1024 * 1024
# Bytes per token when nothing was kept to count (a rough, deliberately high guess).
_BYTES_PER_TOKEN = 4


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of one SSE event."""
    lines = [
        line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")
    ]
    return b"\n".join(lines)


def _json(event: bytes) -> Any:
    try:
        return orjson.loads(event_data(event))
    except orjson.JSONDecodeError:
        return None


class StreamMeter:
    """Watches one stream's events; ``observe`` returns what to send (None: drop)."""

    def __init__(
        self, endpoint: Endpoint, strip_usage: bool, retain_bytes: int = RETAIN_BYTES
    ) -> None:
        self.endpoint = endpoint
        self.strip_usage = strip_usage
        self.usage: Usage | None = None
        self.finished = False
        self.events: list[bytes] = []  # the first events, up to retain_bytes in all
        self.retained_bytes = 0
        self.dropped_bytes = 0
        self._retain_limit = retain_bytes

    def retain(self, event: bytes) -> None:
        """Keep ``event`` for ``generated_text`` while the kept events fit in
        ``retain_bytes``; from the first that does not, only count the bytes."""
        if self.dropped_bytes or self.retained_bytes + len(event) > self._retain_limit:
            self.dropped_bytes += len(event)
        else:
            self.events.append(event)
            self.retained_bytes += len(event)

    def scale_estimate(self, tokens: int) -> int:
        """``tokens`` counted in ``generated_text()``, extended to the events not kept."""
        if not self.dropped_bytes:
            return tokens
        if not self.retained_bytes:
            return self.dropped_bytes // _BYTES_PER_TOKEN
        whole = self.retained_bytes + self.dropped_bytes
        return math.ceil(tokens * whole / self.retained_bytes)

    def observe(self, event: bytes) -> bytes | None:
        """Account for one event; returns the bytes for the client."""
        self.retain(event)
        if self.endpoint is Endpoint.MESSAGES:
            self._anthropic(event)
            return event
        if self.endpoint is Endpoint.RESPONSES:
            head = event[:64]
            if any(marker in head for marker in _RESPONSES_END):
                data = _json(event)
                response = data.get("response") if isinstance(data, dict) else None
                if isinstance(response, dict):
                    self.usage = from_responses(response.get("usage"))
                self.finished = True
            return event
        return self._openai(event)

    def _openai(self, event: bytes) -> bytes | None:
        if b"[DONE]" in event[:16]:
            self.finished = True
            return event
        if b'"usage"' not in event:
            return event
        null = _NULL_USAGE.search(event)
        if null is not None:
            return event[: null.start()] + event[null.end() :] if self.strip_usage else event
        data = _json(event)
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            self.usage = from_openai(data["usage"])
            if self.strip_usage and not data.get("choices"):
                return None
        return event

    def _anthropic(self, event: bytes) -> None:
        head = event[:80]
        if b"message_start" in head:
            data = _json(event)
            message = data.get("message") if isinstance(data, dict) else None
            if isinstance(message, dict):
                self.usage = from_anthropic(message.get("usage")) or Usage()
        elif b"message_delta" in head:
            data = _json(event)
            delta = data.get("usage") if isinstance(data, dict) else None
            if isinstance(delta, dict):
                self._anthropic_delta(delta)
        elif b"message_stop" in head:
            self.finished = True

    def _anthropic_delta(self, delta: dict[str, Any]) -> None:
        usage = self.usage or Usage()
        counts = Counts()
        if delta.get("output_tokens") is not None:
            usage.output_tokens = counts.get(delta, "output_tokens")  # cumulative
        if delta.get("input_tokens") is not None:
            # Newer servers repeat the final input counts here; the fields they give win,
            # the ones they leave out (or null) keep message_start's values.
            if delta.get("cache_read_input_tokens") is not None:
                usage.cache_read_tokens = counts.get(delta, "cache_read_input_tokens")
            if delta.get("cache_creation_input_tokens") is not None:
                usage.cache_write_tokens = counts.get(delta, "cache_creation_input_tokens")
            usage.input_tokens = (
                counts.get(delta, "input_tokens")
                + usage.cache_read_tokens
                + usage.cache_write_tokens
            )
        checked = counts.usage(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.cache_write_1h_tokens,
            usage.reasoning_tokens,
        )
        usage.problem = usage.problem or checked.problem
        self.usage = usage

    def generated_text(self) -> str:
        """Text and tool arguments in the kept events (for estimates after a cut; see
        ``scale_estimate`` for the rest)."""
        parts: list[str] = []
        for event in self.events:
            data = _json(event)
            if data is not None:
                collect_text(data, parts)
        return "".join(parts)


def collect_text(value: Any, parts: list[str], key: str | None = None) -> None:
    """Append the generated text (and tool arguments) found anywhere in ``value``."""
    if isinstance(value, str):
        if key in _TEXT_KEYS:
            parts.append(value)
    elif isinstance(value, dict):
        for name, item in value.items():
            collect_text(item, parts, name)
    elif isinstance(value, list):
        for item in value:
            collect_text(item, parts, key)
