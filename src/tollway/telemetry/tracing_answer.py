"""What an answer says about itself, read from the bytes on their way to the client.

Traces report the model that actually answered (``gen_ai.response.model``) and why it
stopped (``gen_ai.response.finish_reasons``). The gateway does not otherwise parse
answers for them, so while tracing is on the bytes sent to the client are searched as
they pass: by then they are in the client's dialect (OpenAI or Anthropic, whatever the
upstream spoke), so two keys cover every endpoint:

- ``"model"``: the first one in the answer (a top-level field of every whole answer, and
  of a stream's first event: chat chunks, Anthropic ``message_start``, Responses
  ``response.created``);
- ``"finish_reason"`` (OpenAI chat and completions, one per choice) and
  ``"stop_reason"`` (Anthropic). The Responses API has no finish reason.

Only a key written as JSON syntax matches: inside a JSON string every quote is escaped,
so generated text cannot. The values kept are short identifiers, and a finish reason
outside the APIs' own lists is kept as ``other``, so no generated text can reach a span.
"""

from __future__ import annotations

import re

_MODEL = re.compile(rb'"model"\s*:\s*"([A-Za-z0-9._:/@+-]{1,128})"')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([A-Za-z0-9_]{1,32})"')
_STOP = re.compile(rb'"stop_reason"\s*:\s*"([A-Za-z0-9_]{1,32})"')
# https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices and
# https://docs.anthropic.com/en/api/messages#response-stop-reason
KNOWN_REASONS = frozenset(
    {
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
MAX_REASONS = 16  # one per choice; more would only repeat


class Answer:
    """The response model and finish reasons seen so far in one call's answer."""

    __slots__ = ("finish_reasons", "model")

    def __init__(self) -> None:
        self.model: str | None = None
        self.finish_reasons: list[str] = []

    def see(self, chunk: bytes) -> None:
        """Look through one body chunk (a whole answer, or a stream's events)."""
        if self.model is None and b'"model"' in chunk:
            match = _MODEL.search(chunk)
            if match is not None:
                self.model = match.group(1).decode("ascii")
        for key, pattern in ((b'"finish_reason"', _FINISH), (b'"stop_reason"', _STOP)):
            if key in chunk and len(self.finish_reasons) < MAX_REASONS:
                for reason in pattern.findall(chunk)[: MAX_REASONS - len(self.finish_reasons)]:
                    text = reason.decode("ascii")
                    self.finish_reasons.append(text if text in KNOWN_REASONS else "other")
