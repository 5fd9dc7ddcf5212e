"""Replacing findings in text, whole or streamed.

``redact`` replaces non-overlapping findings, the longest first where two overlap.
``StreamRedactor`` does the same to a streamed answer, delta by delta, and its output
joined is exactly ``redact`` of the whole text. It holds back the last ``max_span``
characters of the largest guard (plus ``context`` for what a pattern looks at after a
match) and never cuts through a finding or a run of non-space characters (a key or a
JWT split across deltas is seen whole). Already emitted text is kept as ``context``
characters of left context, so patterns that look behind a match (a word before a bare
national id, a name before an assigned secret) see the same text as in a whole scan.

That equality rests on the guards being local: whether a span is a finding depends
only on the text ``context`` characters around it. The PII and secrets guards are; a
guard that scores the whole text (injection) sets ``max_span`` past any text, and the
redactor then holds the whole answer until ``flush``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from tollway.guards.base import Finding, TextGuard
from tollway.guards.spans import Spans

# Characters of look-around a pattern may need beyond its match, either side.
CONTEXT = 128
# Characters a stream redactor lets pile up past its hold before it scans again: fewer
# scans of the same held-back window (each costs a scan of about hold + context chars).
# When little could be emitted (a long run without spaces, a private key without its end
# yet) the next scan waits for the held text to grow by half, so that scanning a stream
# stays linear in its length.
STEP = 64


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Findings that do not overlap, the longest kept first (ties: the earliest)."""
    spans = Spans()
    chosen = []
    ordered = sorted(findings, key=lambda f: (f.start - f.end, f.start, f.guard, f.kind))
    for finding in ordered:
        if finding.end > finding.start and spans.add(finding.start, finding.end):
            chosen.append(finding)
    chosen.sort(key=lambda finding: finding.start)
    return chosen


def redact(text: str, findings: Iterable[Finding], guard: TextGuard | Iterable[TextGuard]) -> str:
    """``text`` with each finding's span replaced by its guard's replacement."""
    guards = _by_name([guard] if isinstance(guard, TextGuard) else guard)
    return _apply(text, resolve(findings), guards, 0, len(text))


def _by_name(guards: Iterable[TextGuard]) -> dict[str, TextGuard]:
    return {guard.name: guard for guard in guards}


def _apply(
    text: str, chosen: Sequence[Finding], guards: dict[str, TextGuard], start: int, end: int
) -> str:
    """``text[start:end]`` with ``chosen`` (sorted, inside it) replaced."""
    parts, position = [], start
    for finding in chosen:
        if not start <= finding.start < finding.end <= end:
            raise ValueError(f"finding {finding} is outside the text [{start}, {end})")
        parts.append(text[position : finding.start])
        guard = guards.get(finding.guard)
        parts.append(
            guard.replacement(finding) if guard is not None else f"[REDACTED:{finding.kind}]"
        )
        position = finding.end
    parts.append(text[position:end])
    return "".join(parts)


class StreamRedactor:
    """Redacts a streamed text: ``feed`` each delta, emit what it returns, then ``flush``."""

    def __init__(
        self, guards: Sequence[TextGuard], *, context: int = CONTEXT, step: int = STEP
    ) -> None:
        self._guards = tuple(guards)
        self._names = _by_name(self._guards)
        self._context = context
        self._hold = max((guard.max_span for guard in self._guards), default=0) + context
        self._step = step
        self._tail = ""  # the last emitted characters, as they were before redaction
        self._pending = ""
        self._base = 0  # where ``_tail`` starts in the whole streamed text
        # The findings redacted so far, spans in the whole streamed text: at the end, the
        # same as ``resolve`` of the guards' findings on the whole text.
        self.found: list[Finding] = []
        self._due = self._hold + step  # scan again once this many characters are held

    def feed(self, delta: str) -> str:
        """Take the next delta; return the redacted text that is final now."""
        if not self._guards:
            return delta
        self._pending += delta
        if len(self._pending) < self._due:
            return ""
        out = self._emit(final=False)
        held = len(self._pending)
        self._due = held + max(self._step, (held - self._hold) // 2)
        return out

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        if not self._pending:
            return ""
        return self._emit(final=True)

    def _emit(self, *, final: bool) -> str:
        text = self._tail + self._pending
        offset = len(self._tail)
        # A finding that starts in emitted text was already dealt with (there is none
        # when the guards are local: it was found whole before it was emitted).
        findings = [f for guard in self._guards for f in guard.scan(text) if f.start >= offset]
        cut = len(text) if final else self._cut(text, offset, findings)
        if cut <= offset:
            return ""
        chosen = [f for f in resolve(findings) if f.end <= cut]
        out = _apply(text, chosen, self._names, offset, cut)
        base = self._base
        self.found.extend(replace(f, start=f.start + base, end=f.end + base) for f in chosen)
        tail_start = max(0, cut - self._context)
        self._tail, self._pending, self._base = text[tail_start:cut], text[cut:], base + tail_start
        return out

    def _cut(self, text: str, offset: int, findings: Sequence[Finding]) -> int:
        """Where the final text ends: before the hold, a word and any finding crossing it."""
        cut = len(text) - self._hold
        if cut <= offset:
            return offset
        space = max(text.rfind(" ", offset, cut + 1), text.rfind("\n", offset, cut + 1))
        space = max(space, text.rfind("\t", offset, cut + 1))
        cut = space if space > offset else offset
        # Latest start first: a finding moved over can only be crossed by one starting
        # earlier, so one pass handles chains of overlapping findings.
        for finding in sorted(findings, key=lambda f: f.start, reverse=True):
            if finding.start < cut < finding.end:
                cut = finding.start
        return cut
