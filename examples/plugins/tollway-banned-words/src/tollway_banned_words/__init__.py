"""A guard that finds banned words (whole words, any case): an example plugin."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from tollway.guards.base import Finding, TextGuard

_MAX_WORDS = 1000
_MAX_WORD = 100


class BannedWordsGuard(TextGuard):
    """Finds each occurrence of the ``words`` option (a list of strings)."""

    name: ClassVar[str] = "banned_words"
    max_span: ClassVar[int] = _MAX_WORD

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        unknown = set(options) - {"words"}
        if unknown:
            raise ValueError(f"banned_words: unknown option(s) {', '.join(sorted(unknown))}")
        words = options.get("words")
        if (
            not isinstance(words, list)
            or not 0 < len(words) <= _MAX_WORDS
            or not all(isinstance(w, str) and 0 < len(w) <= _MAX_WORD for w in words)
        ):
            raise ValueError(
                f"banned_words: 'words' must be a list of 1 to {_MAX_WORDS} words "
                f"of at most {_MAX_WORD} characters"
            )
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def scan(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, "banned_word", match.start(), match.end())
            for match in self._pattern.finditer(text)
        ]
