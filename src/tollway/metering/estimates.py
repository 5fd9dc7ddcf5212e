"""What a call may cost before it runs, and what it cost when the upstream did not say.

``input_bound`` is a *provable* upper bound of a request's input tokens, used for budget
holds: every token a tokenizer produces covers at least one byte of the text, and every
text the upstream reads is in the JSON body (JSON escapes only add bytes), so the body's
size bounds the text, tool definitions and message framing (``{"role":"user",...}`` is
longer in bytes than the few tokens a chat template spends on it); the system prompt a
provider adds when tools are given fits a fixed allowance; media referenced by URL (not
in the body) get a fixed bound each. The tokenizer is not involved: budget admission
costs a length and a byte search.

Not in the body, so not covered: what a provider adds on its side (server tools such as
web search bill the pages they read as input; a Responses ``previous_response_id``
brings the stored conversation). Budgets on such calls can be exceeded by that much.

``Estimator`` counts with the tokenizer where the upstream's counts are missing or
invalid (a cut stream, a client gone, an upstream reporting nonsense), always flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from tollway.metering.stream_meter import StreamMeter, collect_text
from tollway.metering.tokens import TokenCounter
from tollway.metering.usage import Usage

# Special tokens around the conversation; the system prompt providers add when tools are
# given (Anthropic documents 346 tokens for its tool-use prompt; computer use adds ~500).
_BASE_TOKENS = 64
_TOOLS_TOKENS = 1024
# An image, PDF or audio file given by URL: what the largest documented image costs
# (OpenAI high detail, Anthropic's 1.15 megapixel cap) with room to spare.
_MEDIA_TOKENS = 8192
_MEDIA_MARKERS = (b'"image', b'"input_image', b'"document', b'"file', b'"input_file', b'"audio')
_MEDIA_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio"}
)
# Texts longer than this are tokenized off the event loop.
_THREAD_CHARS = 16_384


def input_bound(payload: dict[str, Any], body: bytes | int) -> int:
    """A provable upper bound of the input tokens of a request body."""
    size = body if isinstance(body, int) else len(body)
    media = 0
    if not isinstance(body, int) and any(marker in body for marker in _MEDIA_MARKERS):
        media = _count_media(payload)
    tools = _TOOLS_TOKENS if payload.get("tools") else 0
    return size + _BASE_TOKENS + tools + media * _MEDIA_TOKENS


def _count_media(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if value.get("type") in _MEDIA_TYPES else 0
        return own + sum(_count_media(item) for item in value.values())
    if isinstance(value, list):
        return sum(_count_media(item) for item in value)
    return 0


class Estimator:
    """Tokenizer estimates, off the event loop when the text is large."""

    def __init__(self, tokens: TokenCounter) -> None:
        self._tokens = tokens

    async def _ready(self) -> None:
        if not self._tokens.loaded:  # the first count loads the tables, off the loop
            await asyncio.to_thread(self._tokens.load)

    async def input(self, payload: dict[str, Any] | None) -> int:
        """The request's input tokens, as the tokenizer counts them."""
        if payload is None:
            return 0
        await self._ready()
        size = sum(len(str(payload.get(f, ""))) for f in ("messages", "input", "prompt"))
        if size > _THREAD_CHARS:
            return await asyncio.to_thread(self._tokens.count_request, payload)
        return self._tokens.count_request(payload)

    async def messages(self, payload: dict[str, Any]) -> int:
        """Input tokens of a messages-shaped body (the local ``count_tokens`` answer)."""
        await self._ready()
        size = sum(len(str(payload.get(f, ""))) for f in ("messages", "system", "tools"))
        if size > _THREAD_CHARS:
            return await asyncio.to_thread(self._tokens.count_messages, payload)
        return self._tokens.count_messages(payload)

    async def text(self, text: str) -> int:
        """Tokens in generated text."""
        await self._ready()
        if len(text) > _THREAD_CHARS:
            return await asyncio.to_thread(self._tokens.count_text, text)
        return self._tokens.count_text(text)

    async def stream(self, stream: StreamMeter, payload: dict[str, Any] | None) -> Usage:
        """Usage of a stream that ended without (valid) counts: what the upstream did
        report, the rest counted."""
        reported = stream.usage if stream.usage is not None and not stream.usage.problem else None
        usage = reported or Usage()
        if usage.input_tokens == 0:
            usage.input_tokens = await self.input(payload)
        if usage.output_tokens == 0:
            counted = await self.text(stream.generated_text())
            usage.output_tokens = stream.scale_estimate(counted)
        usage.estimated = True
        return usage

    async def body(self, payload: dict[str, Any] | None, body: bytes) -> Usage:
        """Usage of a complete answer that reported none (or nonsense)."""
        parts: list[str] = []
        with contextlib.suppress(orjson.JSONDecodeError):
            collect_text(orjson.loads(body), parts)
        output = await self.text("".join(parts))
        return Usage(input_tokens=await self.input(payload), output_tokens=output, estimated=True)
