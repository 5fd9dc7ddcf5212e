"""Folding text before a scan, so invisible or look-alike characters hide nothing.

A model reads ``AKIA\\u200bIOSFODNN7EXAMPLE`` (a zero-width space inside) or
``\\uff21\\uff2b\\uff29\\uff21...`` (full-width "AKIA...") as the key it is; a pattern
does not. ``fold`` makes the copy a guard scans: each character folded on its own by
NFKC (full-width and mathematical letters, ligatures, no-break spaces ...),
default-ignorable characters dropped (format characters such as U+200B, the bidi
controls U+202A-U+202E and U+2066-U+2069 and the soft hyphen U+00AD, variation
selectors, fillers) and Unicode tag characters (U+E0020-E007E, invisible ASCII
look-alikes used to smuggle text) read as the ASCII they mirror. ``Folded.original``
maps a finding's span in the copy back to the span of the original text it came from,
which is what gets redacted.

Characters are folded one at a time (no canonical composition), so the mapping stays
local and a guard stays local (see ``redact.py``). ASCII text is its own fold and costs
one ``isascii`` check; other text is folded in chunks (C-speed ``translate`` per chunk,
Python work per distinct character), and the offset map is only built when a finding
has to be mapped back.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from tollway.guards.base import Finding

# Characters folded per ``translate`` call: bounds the time one C call holds the GIL.
CHUNK = 1 << 16
# Default-ignorable characters that are not format characters (category Cf).
_IGNORABLE = frozenset(
    (
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        0x3164,
        0xFFA0,
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    )
)
_TAGS = range(0xE0020, 0xE007F)


@lru_cache(maxsize=16384)
def fold_char(char: str) -> str:
    """What one character reads as: ``""`` for an invisible one."""
    code = ord(char)
    if code < 0x80:
        return char
    if code in _TAGS:
        return chr(code - 0xE0000)
    if code in _IGNORABLE or unicodedata.category(char) == "Cf":
        return ""
    folded = unicodedata.normalize("NFKC", char)
    # NFKC may fold into another ignorable (U+3164 becomes U+1160).
    return "".join(c for c in folded if fold_char(c) == c) if folded != char else char


class Folded:
    """A text's folded copy and the way back to the original's offsets."""

    __slots__ = ("_chunks", "_folded_at", "_original_at", "_single", "original_text", "text")

    def __init__(
        self, original: str, text: str, chunks: list[tuple[int, int, frozenset[str]]]
    ) -> None:
        self.original_text = original
        self.text = text
        # (original start, folded start, the chunk's characters that do not fold to one)
        self._chunks = chunks
        self._folded_at: list[int] = []
        self._original_at: list[int] = []
        self._single: list[bool] = []  # whether the piece maps one to one

    @property
    def changed(self) -> bool:
        """Whether the copy differs from the original."""
        return self.text is not self.original_text

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original span that folded ``[start, end)`` (``end > start``) came from."""
        if not self.changed:
            return start, end
        if not self._folded_at:
            self._map()
        return self._position(start)[0], self._position(end - 1)[1]

    def _position(self, at: int) -> tuple[int, int]:
        """The original characters folded position ``at`` came from."""
        i = bisect_right(self._folded_at, at) - 1
        origin = self._original_at[i]
        if self._single[i]:
            origin += at - self._folded_at[i]
        return origin, origin + 1

    def _map(self) -> None:
        """The pieces: stretches that fold one to one, and single characters that fold
        to several; characters that fold to nothing leave a gap between pieces."""
        folded_at, original_at, single = self._folded_at, self._original_at, self._single
        for origin, position, uneven in self._chunks:
            end = self._chunk_end(origin)
            if not uneven:
                folded_at.append(position)
                original_at.append(origin)
                single.append(True)
                continue
            run = False  # whether the last piece is a one-to-one stretch still open
            for offset, char in enumerate(self.original_text[origin:end]):
                out = len(fold_char(char)) if char in uneven else 1
                if out == 1:
                    if not run:
                        folded_at.append(position)
                        original_at.append(origin + offset)
                        single.append(True)
                        run = True
                elif out:
                    folded_at.append(position)
                    original_at.append(origin + offset)
                    single.append(False)
                    run = False
                else:
                    run = False
                position += out

    def _chunk_end(self, origin: int) -> int:
        return min(len(self.original_text), origin + CHUNK)


def fold(text: str) -> Folded:
    """``text`` folded for scanning (the same object when nothing folds)."""
    if text.isascii():
        return Folded(text, text, [])
    parts: list[str] = []
    chunks: list[tuple[int, int, frozenset[str]]] = []
    position = 0
    changed = False
    for origin in range(0, len(text), CHUNK):
        chunk = text[origin : origin + CHUNK]
        out, uneven = chunk, frozenset[str]()
        if not chunk.isascii():
            table: dict[int, str] = {}
            for char in set(chunk):
                if char > "\x7f":
                    folded = fold_char(char)
                    if folded != char:
                        table[ord(char)] = folded
            if table:
                out = chunk.translate(table)
                uneven = frozenset(chr(c) for c, f in table.items() if len(f) != 1)
                changed = True
        chunks.append((origin, position, uneven))
        parts.append(out)
        position += len(out)
    if not changed:
        return Folded(text, text, [])
    return Folded(text, "".join(parts), chunks)


def scan_folded(scan: Callable[[str], list[Finding]], text: str) -> list[Finding]:
    """``scan`` run on ``text`` folded, its findings' spans in ``text``."""
    folded = fold(text)
    if not folded.changed:
        return scan(text)
    found = []
    for finding in scan(folded.text):
        if finding.end <= finding.start:
            continue
        start, end = folded.original(finding.start, finding.end)
        found.append(replace(finding, start=start, end=end))
    return found
