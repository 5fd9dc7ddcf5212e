"""National identity numbers in text: a pattern finds a candidate, python-stdnum checks it.

python-stdnum (https://arthurdejong.org/python-stdnum/) validates each number's
structure and check digits offline. Numbers that are bare runs of digits (a US SSN
without dashes, a Dutch BSN, a Polish PESEL, a German tax id, a Swedish personnummer)
look like any order number, so they count only after a word that names them (``SSN``,
``BSN``, ``PESEL``, ``Steuer-ID`` ...) a few words before. Formats with their own
shape (``123-45-6789``, a Spanish DNI's check letter, an Italian codice fiscale, a UK
National Insurance number) count anywhere.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

from tollway.guards.literals import Literals, lower

# How far before a bare number its name may stand (characters).
CONTEXT_CHARS = 48
_NAMES = re.compile(
    r"(?i)\b(?:ssn|social\s+security|bsn|burgerservice|pesel|steuer|idnr|identifikations"
    r"|tax\s*(?:id|identification)|personnummer|personal\s*(?:id|number|identity)"
    r"|national\s*(?:id|insurance|identity)|nir\b|s[ée]curit[ée]\s+sociale|insee"
    r"|id\s*(?:no|nr|number|#))"
)
# What each alternative of _NAMES starts with, lower case.
_NAME_LITERALS = Literals(
    (
        "ssn", "social", "bsn", "burgerservice", "pesel", "steuer", "tax", "personnummer",
        "personal", "national", "nir", "sécurit", "securit", "insee", "id",
    )
)  # fmt: skip
# UK National Insurance numbers: letters and prefixes HMRC never issues
# (https://www.gov.uk/hmrc-internal-manuals/national-insurance-manual/nim39110).
_NINO = re.compile(
    r"(?<![\w-])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])( ?)\d{2}\2\d{2}\2\d{2}\2[A-D](?![\w-])"
)
_NINO_NEVER = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def _nino(value: str) -> bool:
    return value[:2] not in _NINO_NEVER


def _any(*checks: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda value: any(check(value) for check in checks)


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    needs_name: bool
    digits: int  # the longest run of digits a match holds (to skip rules cheaply)


_RULES = (
    _Rule(re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), ssn.is_valid, False, 9),
    _Rule(re.compile(r"(?<![\w-])\d{9}(?![\w-])"), _any(ssn.is_valid, bsn.is_valid), True, 9),
    _Rule(re.compile(r"(?<![\w-])\d{11}(?![\w-])"), _any(pesel.is_valid, idnr.is_valid), True, 11),
    _Rule(re.compile(r"(?<![\w-])\d{2} \d{3} \d{3} \d{3}(?![\w-])"), idnr.is_valid, True, 11),
    _Rule(_NINO, _nino, False, 6),
    # Spain: eight digits and a check letter; foreigners' NIE starts with X, Y or Z.
    _Rule(re.compile(r"(?<![\w-])\d{8}-?[A-HJ-NP-TV-Z](?![\w-])"), dni.is_valid, False, 8),
    _Rule(re.compile(r"(?<![\w-])[XYZ]-?\d{7}-?[A-HJ-NP-TV-Z](?![\w-])"), nie.is_valid, False, 7),
    # Italy: the codice fiscale (digits may be replaced by letters, "omocodia").
    _Rule(
        re.compile(
            r"(?<![\w-])[A-Z]{6}[\dLMNP-V]{2}[ABCDEHLMPRST][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z]"
            r"(?![\w-])"
        ),
        codicefiscale.is_valid,
        False,
        4,
    ),
    # France: the NIR, spaced as printed on the carte Vitale, or bare after its name.
    _Rule(
        re.compile(r"(?<![\w-])[1-478] \d{2} \d{2} (?:\d{2}|2[AB]) \d{3} \d{3} \d{2}(?![\w-])"),
        nir.is_valid,
        False,
        13,
    ),
    _Rule(
        re.compile(r"(?<![\w-])[1-478]\d{4}(?:\d{2}|2[AB])\d{8}(?![\w-])"), nir.is_valid, True, 13
    ),
    _Rule(
        re.compile(r"(?<![\w-])(?:19|20)?\d{6}[-+]\d{4}(?![\w-])"), personnummer.is_valid, True, 10
    ),
)


def national_ids(
    text: str, low: int = 0, high: int | None = None, digits: int = 1 << 30
) -> Iterator[tuple[int, int]]:
    """Valid national id numbers in ``text[low:high]``, which holds ``digits`` in a row."""
    high = len(text) if high is None else high
    names: list[int] | None = None  # where a name for an id may start, in or before the range
    for rule in _RULES:
        if rule.digits > digits:
            continue
        if rule.needs_name:
            if names is None:
                names = _name_starts(text, max(0, low - CONTEXT_CHARS), high)
            if not names:
                continue
        for match in rule.pattern.finditer(text, low, high):
            start, end = match.span()
            if rule.needs_name and not _named(text, names or [], start):
                continue
            if rule.valid(match.group()):
                yield start, end


def _name_starts(text: str, low: int, high: int) -> list[int]:
    """Where a name for an id starts in ``text[low:high]``, sorted: literals found in one
    pass, each confirmed by the pattern (which alone would take ~0.3 ms per KB)."""
    found = _NAME_LITERALS.find(lower(text[low:high]))
    starts = sorted({low + at for positions in found.values() for at in positions})
    return [at for at in starts if _NAMES.match(text, at, high)]


def _named(text: str, names: list[int], start: int) -> bool:
    """Whether a name ends before ``start`` and starts at most CONTEXT_CHARS before it."""
    first = bisect_left(names, start - CONTEXT_CHARS)
    return any(_NAMES.match(text, at, start) for at in names[first:] if at < start)
