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

Every count an upstream reports is checked: a count that is not a whole number, is
negative, or exceeds ``bounds.MAX_TOKENS`` (and cache or reasoning counts larger than
the totals they are part of) make the usage *invalid*: ``Usage.problem`` says why, and
the meter replaces it by its own estimate rather than price it as given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.bounds import MAX_TOKENS


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
    problem: str | None = None  # why the upstream's counts cannot be used as given

    @property
    def total_tokens(self) -> int:
        """Input plus output."""
        return self.input_tokens + self.output_tokens


class Counts:
    """Reads an upstream's token counts, noting every one that cannot be right."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(self, container: Any, key: str) -> int:
        """The count at ``container[key]`` (0 when absent or invalid)."""
        if not isinstance(container, dict):
            return 0
        value = container.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{key} is not a whole number ({str(value)[:40]!r})")
            return 0
        if not 0 <= value <= MAX_TOKENS:
            self.problems.append(f"{key} is out of range ({str(value)[:40]})")
            return 0
        return value

    def usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Usage:
        """A Usage from the counts, with a ``problem`` when anything was wrong."""
        usage = Usage(
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            cache_write_1h_tokens,
            reasoning_tokens,
        )
        if usage.input_tokens > MAX_TOKENS:
            self.problems.append(f"input tokens out of range ({usage.input_tokens})")
        if usage.cache_read_tokens + usage.cache_write_tokens > usage.input_tokens:
            self.problems.append("cache tokens exceed the input tokens")
        if usage.reasoning_tokens > usage.output_tokens:
            self.problems.append("reasoning tokens exceed the output tokens")
        if usage.cache_write_1h_tokens > usage.cache_write_tokens:
            self.problems.append("1-hour cache writes exceed the cache writes")
        if self.problems:
            usage.problem = "; ".join(self.problems)
        return usage


def from_openai(usage: Any) -> Usage | None:
    """Usage from an OpenAI chat, completions or embeddings ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        return from_responses(usage)
    counts = Counts()
    return counts.usage(
        input_tokens=counts.get(usage, "prompt_tokens"),
        output_tokens=counts.get(usage, "completion_tokens"),
        cache_read_tokens=counts.get(usage.get("prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=counts.get(usage.get("completion_tokens_details"), "reasoning_tokens"),
    )


def from_responses(usage: Any) -> Usage | None:
    """Usage from an OpenAI Responses ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    counts = Counts()
    return counts.usage(
        input_tokens=counts.get(usage, "input_tokens"),
        output_tokens=counts.get(usage, "output_tokens"),
        cache_read_tokens=counts.get(usage.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=counts.get(usage.get("output_tokens_details"), "reasoning_tokens"),
    )


def from_anthropic(usage: Any) -> Usage | None:
    """Usage from an Anthropic ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    counts = Counts()
    read = counts.get(usage, "cache_read_input_tokens")
    write = counts.get(usage, "cache_creation_input_tokens")
    return counts.usage(
        input_tokens=counts.get(usage, "input_tokens") + read + write,
        output_tokens=counts.get(usage, "output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
        # 1-hour cache writes are billed at their own rate.
        cache_write_1h_tokens=counts.get(usage.get("cache_creation"), "ephemeral_1h_input_tokens"),
    )


def from_gemini(metadata: Any) -> Usage | None:
    """Usage from a Gemini ``usageMetadata`` object."""
    if not isinstance(metadata, dict):
        return None
    counts = Counts()
    thoughts = counts.get(metadata, "thoughtsTokenCount")
    return counts.usage(
        input_tokens=counts.get(metadata, "promptTokenCount")
        + counts.get(metadata, "toolUsePromptTokenCount"),
        output_tokens=counts.get(metadata, "candidatesTokenCount") + thoughts,
        cache_read_tokens=counts.get(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def from_converse(usage: Any) -> Usage | None:
    """Usage from a Bedrock Converse ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    counts = Counts()
    read = counts.get(usage, "cacheReadInputTokens")
    write = counts.get(usage, "cacheWriteInputTokens")
    return counts.usage(
        input_tokens=counts.get(usage, "inputTokens") + read + write,
        output_tokens=counts.get(usage, "outputTokens"),
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
