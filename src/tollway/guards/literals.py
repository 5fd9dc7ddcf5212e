"""Where many literal strings occur in a text, found in one pass.

An Aho-Corasick automaton (pyahocorasick, https://pyahocorasick.readthedocs.io/) finds
every occurrence of hundreds of literals in one C pass, ~10-20 us per KB; one
``str.find`` per literal would cost about 1 us per KB each. Guards use it to try their
patterns only where the literal a match must start with occurs.
"""

from __future__ import annotations

from collections.abc import Iterable

import ahocorasick  # type: ignore[import-not-found]

Positions = dict[str, list[int]]


def lower(text: str) -> str:
    """Lower case with the same length (a few characters lower to two: keep those), so
    positions found in it are positions in ``text``."""
    folded = text.lower()
    if len(folded) == len(text):
        return folded
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class Literals:
    """A fixed set of literals; ``find`` says where each occurs (built once, read-only)."""

    def __init__(self, words: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for word in set(words):
            if word:
                self._automaton.add_word(word, (word, len(word) - 1))
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def find(self, text: str) -> Positions:
        """Start positions of each literal that occurs in ``text``, in order."""
        found: Positions = {}
        if self._empty or not text:
            return found
        for end, (word, back) in self._automaton.iter(text):
            found.setdefault(word, []).append(end - back)
        return found
