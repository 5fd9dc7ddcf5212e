"""How a prompt-injection signal is written and matched (the table is ``injection_table.py``).

Patterns match lower-cased, NFKC-folded text unless ``case_sensitive``. A weight is how
sure one signal alone makes us: 0.9 and above is enough by itself at the default
threshold (0.8); 0.5-0.6 needs a second signal; lower ones only tip a borderline text.

Each signal lists the literals its matches start with (``starts``) and, optionally,
literals a match must hold (``requires``). The pattern is then tried only where a start
literal occurs (all found in one pass, see ``literals.py``), never at every position of
a long text: ``re`` would take 10-70 us per KB and pattern. A test checks the literals
against a plain search at every position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signal:
    """One kind of evidence of an injection."""

    name: str
    weight: float
    pattern: re.Pattern[str]
    starts: frozenset[str]
    requires: frozenset[str] = frozenset()
    case_sensitive: bool = False
    word_start: bool = True  # the match must begin a word

    def found(self, text: str, positions: Mapping[str, Sequence[int]]) -> bool:
        """Whether the signal is in ``text``, given where its literals occur in it."""
        if self.requires and self.requires.isdisjoint(positions):
            return False
        for literal in self.starts.intersection(positions):
            for at in positions[literal]:
                if self._begins_word(text, at) and self.pattern.match(text, at):
                    return True
        return False

    def _begins_word(self, text: str, at: int) -> bool:
        return not self.word_start or at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")


# How often an open-ended repeat in a pattern may repeat at most (see ``_capped``).
CAP = 40
_OPEN_ENDED = re.compile(r"(?<!\\)(\\[sw]|\])([+*])|\{(\d+),\}")


def _capped(pattern: str) -> str:
    r"""``pattern`` with open-ended repeats capped (``\s+`` becomes ``\s{1,40}``)."""
    # A pattern is tried at every place its first words occur, so one that may run on
    # ("***" tried at each star of a line of a thousand) would make a scan quadratic.

    def cap(match: re.Match[str]) -> str:
        if match.group(3) is not None:
            low = int(match.group(3))
            return f"{{{low},{max(low, CAP)}}}"
        return f"{match.group(1)}{{{1 if match.group(2) == '+' else 0},{CAP}}}"

    return _OPEN_ENDED.sub(cap, pattern)


def signal(
    name: str,
    weight: float,
    pattern: str,
    starts: str | tuple[str, ...],
    requires: str = "",
    *,
    case_sensitive: bool = False,
    word_start: bool = True,
) -> Signal:
    """A signal; ``starts`` and ``requires`` list literals separated by "|"."""
    return Signal(
        name,
        weight,
        re.compile(_capped(pattern)),
        frozenset(starts if isinstance(starts, tuple) else starts.split("|")),
        frozenset(requires.split("|") if requires else ()),
        case_sensitive,
        word_start,
    )
