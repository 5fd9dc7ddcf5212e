"""Token usage as the upstream reported it, normalized across APIs.

``input_tokens`` counts every input token, cached or not (genai-prices' convention);
``cache_read_tokens`` and ``cache_write_tokens`` say how many of them were cache hits or
writes. Shapes:

- OpenAI chat/completions/embeddings: ``usage.prompt_tokens`` (includes cached),
  ``prompt_tokens_details.cached_tokens``, ``completion_tokens``,
  ``completion_tokens_details.reasoning_tokens``.
- OpenAI Responses: ``usage.input_tokens`` (includes cached),
  ``input_tokens_details.cached_tokens``, ``output_tokens``,
  ``output_tokens_details.reasoning_tokens``.
- Anthropic: ``usage.input_tokens`` (excludes cache), ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``, ``output_tokens``
  (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching).
- Gemini: ``usageMetadata.promptTokenCount`` (includes ``cachedContentTokenCount``)
  plus ``toolUsePromptTokenCount``; output is ``candidatesTokenCount`` plus
  ``thoughtsTokenCount``, which are the reasoning tokens
  (https://ai.google.dev/api/generate-content#UsageMetadata).
- Bedrock Converse: ``usage.inputTokens`` (excludes cache), ``cacheReadInputTokens``,
  ``cacheWriteInputTokens``, ``outputTokens``
  (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html).

The Gemini and Converse rules are the ones genai-prices reads those APIs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Usage:
    """Tokens of one call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those kept for an hour
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Input plus output."""
        return self.input_tokens + self.output_tokens


def _int(container: Any, key: str) -> int:
    if not isinstance(container, dict):
        return 0
    value = container.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def from_openai(usage: Any) -> Usage | None:
    """Usage from an OpenAI chat, completions or embeddings ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        return from_responses(usage)
    return Usage(
        input_tokens=_int(usage, "prompt_tokens"),
        output_tokens=_int(usage, "completion_tokens"),
        cache_read_tokens=_int(usage.get("prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=_int(usage.get("completion_tokens_details"), "reasoning_tokens"),
    )


def from_responses(usage: Any) -> Usage | None:
    """Usage from an OpenAI Responses ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=_int(usage, "input_tokens"),
        output_tokens=_int(usage, "output_tokens"),
        cache_read_tokens=_int(usage.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=_int(usage.get("output_tokens_details"), "reasoning_tokens"),
    )


def from_anthropic(usage: Any) -> Usage | None:
    """Usage from an Anthropic ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    read = _int(usage, "cache_read_input_tokens")
    write = _int(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_int(usage, "input_tokens") + read + write,
        output_tokens=_int(usage, "output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
        # 1-hour cache writes are billed at their own rate.
        cache_write_1h_tokens=_int(usage.get("cache_creation"), "ephemeral_1h_input_tokens"),
    )


def from_gemini(metadata: Any) -> Usage | None:
    """Usage from a Gemini ``usageMetadata`` object."""
    if not isinstance(metadata, dict):
        return None
    thoughts = _int(metadata, "thoughtsTokenCount")
    return Usage(
        input_tokens=_int(metadata, "promptTokenCount") + _int(metadata, "toolUsePromptTokenCount"),
        output_tokens=_int(metadata, "candidatesTokenCount") + thoughts,
        cache_read_tokens=_int(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def from_converse(usage: Any) -> Usage | None:
    """Usage from a Bedrock Converse ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    read = _int(usage, "cacheReadInputTokens")
    write = _int(usage, "cacheWriteInputTokens")
    return Usage(
        input_tokens=_int(usage, "inputTokens") + read + write,
        output_tokens=_int(usage, "outputTokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def from_json(body: bytes, key: str, parse: Callable[[Any], Usage | None]) -> Usage | None:
    """Usage from the top-level ``key`` of a JSON response body, read with ``parse``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parse(data.get(key)) if isinstance(data, dict) else None


def _usage_object(body: bytes) -> Any:
    """The top-level ``usage`` object of a JSON response, found without parsing the rest.

    Embedding responses can be megabytes of floats; the usage object sits at the end.
    Inside JSON strings quotes are escaped, so an unescaped ``"usage"`` is always a key.
    """
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    start = body.find(b"{", at)
    colon = body.find(b":", at)
    if start < 0 or colon < 0 or body[colon + 1 : start].strip():
        return None
    depth = 0
    for index in range(start, len(body)):
        char = body[index]
        if char == 0x7B:  # {
            depth += 1
        elif char == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    return orjson.loads(body[start : index + 1])
                except orjson.JSONDecodeError:
                    return None
    return None


def from_body(body: bytes, anthropic: bool) -> Usage | None:
    """Usage from a complete (non-streamed) response body."""
    parse = from_anthropic if anthropic else from_openai
    usage = _usage_object(body)
    return parse(usage) if usage is not None else from_json(body, "usage", parse)
