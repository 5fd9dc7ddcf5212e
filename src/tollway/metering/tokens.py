"""Local token estimates with a real BPE tokenizer that ships its tables (bpe-openai).

Used where the upstream cannot count for us (e.g. ``count_tokens`` for a model served by
an OpenAI-type provider). Claude's tokenizer is not public; o200k_base is a close,
documented estimate for it.

The tables load on first use (about 140 MB resident, 0.5-1 s); ``load`` lets an async
caller do that in a thread, so it never stalls the event loop. (tiktoken over the same
table takes about 80 MB, but its merges are quadratic in a long word: ten megabytes of
base64 took 7 s against bpe-openai's linear fraction of a second.)

Counting takes bounded time and memory whatever the request holds:

- bpe-openai's Python wrapper refuses a text of 1,000,000 characters or more, and one of
  more than 200,000 tokens, with a ``ValueError``; ``encode`` also refuses text that
  spells a special token such as ``<|endoftext|>``. (Its Rust core is linear in time and
  small in memory even on one 10 MB run of a single character.) So text is tokenized with
  ``encode_ordinary`` (special-token text counts as the plain text an upstream sees), in
  pieces of at most ``piece_chars`` characters. A piece ends just before a space that
  starts a word, where there is one in its second half: the o200k pre-tokenizer splits
  there too (a word carries its leading space), so prose and code count exactly. Text
  without such a space (base64, one repeated character, spaces only) is cut hard, which
  adds about one token per cut (+61 on 6.8M tokens for 10 MB of base64).
- One request tokenizes until ``tokenize_tokens`` tokens or ``tokenize_chars``
  characters are counted, whichever comes first. The rest of it counts as its UTF-8
  length in bytes: an upper bound (a byte-level BPE token is at least one byte; English
  averages about four), found in linear time without the tokenizer. Past a million
  tokens a prompt fits almost no context window, so exactness buys nothing there, and a
  budget hold should err high.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson

# Per-message framing overhead of chat formats, in tokens (role markers and separators).
_PER_MESSAGE = 3
# A character is at most four UTF-8 bytes and a token at least one byte, so a piece this
# long stays under the wrapper's 200,000-token refusal (and its 1,000,000-character one).
_MAX_PIECE_CHARS = 50_000
PIECE_CHARS = 32_768
# Tokenizer time grows with the tokens produced: a million took 0.1-0.4 s on English,
# base64 and CJK text (a busy 2-core host). The character cap bounds text of very few
# tokens per character (long runs of whitespace).
TOKENIZE_TOKENS = 1_048_576
TOKENIZE_CHARS = 16 * 1024 * 1024
# Spaces followed by more whitespace that a cut looks past before cutting hard.
_CUT_TRIES = 8
# Measuring the UTF-8 length of non-ASCII text encodes it; a slice at a time bounds the copy.
_BYTES_SLICE = 256 * 1024


class _Allowance:
    """What one request may still tokenize; the rest is bounded by its bytes."""

    __slots__ = ("chars", "tokens")

    def __init__(self, tokens: int, chars: int) -> None:
        self.tokens = tokens
        self.chars = chars


class TokenCounter:
    """Counts tokens of request bodies; one per app (the encoding loads lazily)."""

    def __init__(
        self,
        encoding: str = "o200k_base",
        *,
        piece_chars: int = PIECE_CHARS,
        tokenize_tokens: int = TOKENIZE_TOKENS,
        tokenize_chars: int = TOKENIZE_CHARS,
    ) -> None:
        if not 1 <= piece_chars <= _MAX_PIECE_CHARS:
            raise ValueError(f"piece_chars must be between 1 and {_MAX_PIECE_CHARS}")
        if tokenize_tokens < 0 or tokenize_chars < 0:
            raise ValueError("tokenize_tokens and tokenize_chars must not be negative")
        self._encoding_name = encoding
        self._piece_chars = piece_chars
        self._tokenize_tokens = tokenize_tokens
        self._tokenize_chars = tokenize_chars
        self._loading = threading.Lock()
        self._loaded: Any = None

    @property
    def _encoding(self) -> Any:
        # Loaded on first use: a gateway that never needs a local count (no budgets, no
        # count_tokens fallback) should not carry the tables.
        encoding = self._loaded
        if encoding is None:
            with self._loading:  # one load, whichever thread asks first
                if self._loaded is None:
                    self._loaded = _load_encoding(self._encoding_name)
                encoding = self._loaded
        return encoding

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load the tables now (callers on the event loop run this in a thread)."""
        self._encoding  # noqa: B018  (the property loads and keeps them)

    def count_text(self, text: str) -> int:
        """Tokens in a piece of text (past the tokenize caps, an upper bound)."""
        return self._text(text, self._allowance())

    def count_messages(self, payload: dict[str, Any]) -> int:
        """Input tokens of an Anthropic- or OpenAI-shaped request body."""
        return self._messages(payload, self._allowance())

    def count_request(self, payload: dict[str, Any]) -> int:
        """Input tokens of any proxied request body (chat, messages, completions,
        embeddings, responses)."""
        allowance = self._allowance()
        total = self._messages(payload, allowance)
        for field in ("prompt", "input", "instructions"):
            value = payload.get(field)
            if value is not None:
                total += self._content(value, allowance)
        return total

    def _allowance(self) -> _Allowance:
        return _Allowance(self._tokenize_tokens, self._tokenize_chars)

    def _messages(self, payload: dict[str, Any], allowance: _Allowance) -> int:
        total = 0
        system = payload.get("system")
        if system is not None:
            total += self._content(system, allowance) + _PER_MESSAGE
        for message in payload.get("messages") or []:
            if isinstance(message, dict):
                total += self._content(message.get("content"), allowance) + _PER_MESSAGE
        tools = payload.get("tools")
        if tools:
            total += self._json(tools, allowance)
        return total

    def _content(self, content: Any, allowance: _Allowance) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self._text(content, allowance)
        if isinstance(content, list):
            return sum(self._block(block, allowance) for block in content)
        return self._json(content, allowance)

    def _block(self, block: Any, allowance: _Allowance) -> int:
        if isinstance(block, str):
            return self._text(block, allowance)
        if not isinstance(block, dict):
            return 0
        kind = block.get("type")
        if kind in ("text", "input_text") and isinstance(block.get("text"), str):
            return self._text(block["text"], allowance)
        if "content" in block and "role" in block:
            return self._content(block["content"], allowance) + _PER_MESSAGE
        if kind in ("image", "image_url", "input_image", "document", "input_file"):
            # Images are priced by size upstream; a flat estimate keeps this honest
            # without decoding them (Anthropic: about (w*h)/750, capped near 1,600).
            return 1600
        if kind == "tool_result":
            return self._content(block.get("content"), allowance)
        return self._json(block, allowance)

    def _json(self, value: Any, allowance: _Allowance) -> int:
        try:
            text = orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            # Nested deeper than orjson writes (254 levels; it reads 1024): count the
            # strings it holds and one token per value for the punctuation around them.
            return self._leaves(value, allowance)
        return self._text(text, allowance)

    def _leaves(self, value: Any, allowance: _Allowance) -> int:
        total, stack = 0, [value]
        while stack:  # iterative: the depth is what broke the serializer
            item = stack.pop()
            total += 1
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str):
                total += self._text(item, allowance)
        return total

    def _text(self, text: str, allowance: _Allowance) -> int:
        total = 0
        for start, end in self._cuts(text):
            if allowance.tokens <= 0 or allowance.chars < end - start:
                return total + _utf8_length(text, start)
            count = len(self._encoding.encode_ordinary(text[start:end]))
            allowance.tokens -= count
            allowance.chars -= end - start
            total += count
        return total

    def _cuts(self, text: str) -> Iterator[tuple[int, int]]:
        """Bounds of pieces of at most ``piece_chars`` characters."""
        size, start, length = self._piece_chars, 0, len(text)
        while length - start > size:
            cut = _cut(text, start, start + size)
            yield start, cut
            start = cut
        if start < length:
            yield start, length


def _cut(text: str, start: int, stop: int) -> int:
    """Where a piece ending by ``stop`` ends: before the last space in its second half that
    is followed by a non-space (the o200k pre-tokenizer starts a word with it, so both
    sides tokenize as in the whole text), else a hard cut at ``stop``."""
    floor = start + (stop - start) // 2
    cut = text.rfind(" ", floor, stop)
    for _ in range(_CUT_TRIES):  # a few: a long run of spaces holds no good cut
        if cut <= start:
            break
        if not text[cut + 1].isspace():
            return cut
        cut = text.rfind(" ", floor, cut)
    return stop


def _load_encoding(name: str) -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(name)


def _utf8_length(text: str, start: int) -> int:
    """UTF-8 bytes of ``text[start:]`` (lone surrogates count as the 3 bytes of U+FFFD,
    which is what the tokenizer sees in their place)."""
    if text.isascii():
        return len(text) - start
    return sum(
        len(text[i : i + _BYTES_SLICE].encode("utf-8", "surrogatepass"))
        for i in range(start, len(text), _BYTES_SLICE)
    )
