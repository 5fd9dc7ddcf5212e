"""Sets of ``[start, end)`` spans: non-overlapping ones, and any ones to test against."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate


class Spans:
    """Non-overlapping spans kept sorted; ``add`` is O(log n) to find, O(n) to insert."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> bool:
        """Take ``[start, end)`` unless it overlaps a span already taken."""
        i = bisect_left(self._starts, start)
        if i > 0 and self._ends[i - 1] > start:
            return False
        if i < len(self._starts) and self._starts[i] < end:
            return False
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        return True


class Covered:
    """Spans that may overlap one another; says whether a span touches any of them.

    A guard drops a candidate that overlaps a more specific kind's candidate (an IBAN's
    digits are not also a phone number). Testing against *every* candidate of the
    earlier kinds, not only the ones kept, keeps that decision local to the text around
    the span, which the stream redactor relies on.
    """

    __slots__ = ("_ends", "_spans", "_starts")

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []
        self._starts: list[int] = []
        self._ends: list[int] = []  # the largest end among spans starting at or before

    def extend(self, spans: Iterable[tuple[int, int]]) -> None:
        """Add spans."""
        size = len(self._spans)
        self._spans.extend(spans)
        if len(self._spans) == size:
            return
        self._spans.sort()
        self._starts = [start for start, _ in self._spans]
        self._ends = list(accumulate((end for _, end in self._spans), max))

    def overlaps(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` shares a character with any span."""
        i = bisect_left(self._starts, end)  # spans starting before ``end``
        return i > 0 and self._ends[i - 1] > start
