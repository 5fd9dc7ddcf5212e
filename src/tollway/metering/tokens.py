"""Local token estimates with a real BPE tokenizer that ships its tables (bpe-openai).

Used where the upstream cannot count for us (e.g. ``count_tokens`` for a model served by
an OpenAI-type provider). Claude's tokenizer is not public; o200k_base is a close,
documented estimate for it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import orjson

# Per-message framing overhead of chat formats, in tokens (role markers and separators).
_PER_MESSAGE = 3


class TokenCounter:
    """Counts tokens of request bodies; one per app (the encoding loads lazily)."""

    def __init__(self, encoding: str = "o200k_base") -> None:
        self._encoding_name = encoding

    @cached_property
    def _encoding(self) -> Any:
        # Loaded on first use: the tables take ~130 MB, which a gateway that never needs
        # a local count (no budgets, no count_tokens fallback) should not carry.
        import bpe_openai

        return bpe_openai.get_encoding(self._encoding_name)

    def count_text(self, text: str) -> int:
        """Tokens in a piece of text."""
        return len(self._encoding.encode(text)) if text else 0

    def count_messages(self, payload: dict[str, Any]) -> int:
        """Input tokens of an Anthropic- or OpenAI-shaped request body."""
        total = 0
        system = payload.get("system")
        if system is not None:
            total += self._count_content(system) + _PER_MESSAGE
        for message in payload.get("messages") or []:
            if isinstance(message, dict):
                total += self._count_content(message.get("content")) + _PER_MESSAGE
        tools = payload.get("tools")
        if tools:
            total += self.count_text(orjson.dumps(tools).decode())
        return total

    def count_request(self, payload: dict[str, Any]) -> int:
        """Input tokens of any proxied request body (chat, messages, completions,
        embeddings, responses)."""
        total = self.count_messages(payload)
        for field in ("prompt", "input", "instructions"):
            value = payload.get(field)
            if value is not None:
                total += self._count_content(value)
        return total

    def _count_content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.count_text(content)
        if isinstance(content, list):
            return sum(self._count_block(block) for block in content)
        return self.count_text(orjson.dumps(content).decode())

    def _count_block(self, block: Any) -> int:
        if isinstance(block, str):
            return self.count_text(block)
        if not isinstance(block, dict):
            return 0
        kind = block.get("type")
        if kind in ("text", "input_text") and isinstance(block.get("text"), str):
            return self.count_text(block["text"])
        if "content" in block and "role" in block:
            return self._count_content(block["content"]) + _PER_MESSAGE
        if kind in ("image", "image_url", "input_image", "document", "input_file"):
            # Images are priced by size upstream; a flat estimate keeps this honest
            # without decoding them (Anthropic: about (w*h)/750, capped near 1,600).
            return 1600
        if kind == "tool_result":
            return self._count_content(block.get("content"))
        return self.count_text(orjson.dumps(block).decode())
