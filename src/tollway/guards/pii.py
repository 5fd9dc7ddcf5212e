"""Personal data in text: emails, phone numbers, card numbers, IBANs, IP addresses, ids.

Regular expressions only find candidates; each is then validated so that order ids,
versions, dates, UUIDs and prices are not flagged:

- phone numbers by Google's libphonenumber port, ``phonenumbers``
  (https://github.com/daviddrysdale/python-phonenumbers): a number must be *valid* for
  its region (``Leniency.VALID``), national numbers are read in the ``region`` hint and
  ``+`` numbers in their own country. A bare run of digits counts only after a word
  such as "phone" or "call", since most bare ten-digit runs are ids.
- card numbers by the Luhn check (python-stdnum) and the issuer's prefix and length;
- IBANs by python-stdnum (country length, format and the ISO 7064 mod 97 check);
- IP addresses by ``ipaddress``; only public ones count unless ``private_ips`` is set
  (``127.0.0.1`` and ``10.0.0.5`` in a config file are nobody's personal data);
- national ids: see ``national_ids.py``.

Phone matching is the slow part (pure Python, 0.2-1 ms a number), so it runs only on
small windows around runs of seven to fifteen digits, a window already judged is not
judged again (a cache shared by the guards of a process), and a scan may ask
libphonenumber at most ``PHONE_CHECKS`` times plus one per ``PHONE_CHECK_CHARS`` of its
text (``scan_all``: of all the texts of a request). Past that budget a text dense with
numbers stays safe rather than slow: each remaining phone-shaped number (7-15 digits
grouped as phone numbers are, not a date or a dotted address) counts as a phone without
validation, so it is over-redacted, never missed. Whole and streamed redaction then may
differ for such a text (a stream scans short windows, each with its own budget): the
whole answer redacts those numbers, the stream only the valid ones.

Every scan reads a folded copy of the text (``fold.py``): a zero-width character or a
full-width digit does not hide an address or a number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import phonenumbers
from stdnum import iban, luhn

from tollway.guards import options as opt
from tollway.guards.base import Finding, TextGuard
from tollway.guards.fold import scan_folded
from tollway.guards.national_ids import national_ids
from tollway.guards.spans import Covered

KINDS = ("email", "phone", "credit_card", "iban", "ip_address", "national_id")
_NUMERIC_KINDS = ("iban", "credit_card", "national_id", "phone", "ip_address")

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24})(?![\w-])"
)
# "icon@2x.png" is a file, not an address.
_FILE_SUFFIX = re.compile(r"(?i)png|jpe?g|gif|svg|webp|ico|bmp|css|m?js|tsx?|jsx|json|map|lock|txt")
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{1,4}){3,8})(?![\w-])")
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")
# Digit groups as cards are printed: 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4.
_CARD_SEPARATOR = re.compile(r"[ -]")
_CARD_GROUPS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1)})
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?![\w]|\.\d)"
)
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{2,38}(?![\w:]|\.\d)")
_VERSION_WORD = re.compile(r"(?i)\b(?:version|ver|release|build|v)[\s:.]*$")
# Runs of at least four digits with short separators (letters too: "85T10A562" in an
# Italian codice fiscale, "2606:4700" in an IPv6 address); every kind below holds one.
_NUMERIC = re.compile(r"\d(?:[ \-./():+\u00a0A-Z]{0,2}\d){3,}")
_MARGIN = 64
# An "@" an address may hold: a local part's character before it, a domain after it.
_AT = re.compile(
    r"(?<=[A-Za-z0-9._%+-])@(?=(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2})"
)
_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_PHONE_WORD = re.compile(r"(?i)(?:phone|tel|call|mobile|cell|fax|whatsapp|sms|text me|ring)")
_PHONE_MARGIN = 8
_PHONE_LONGEST = 48  # "+1 (415) 555-2671" is 17 characters; a run past 48 is a table
_PHONE_WORD_CHARS = 32  # how far before a bare number its word may stand
PHONE_CHECKS = 64  # libphonenumber validations a scan may make, plus one per ...
PHONE_CHECK_CHARS = 4096  # ... this many characters of text
# Past the budget: a phone-shaped part of a run of digits, and what is not a phone.
_JUDGED_LIMIT = 4096  # windows whose judgement is kept (then all are dropped)
_PHONE_SHAPE = re.compile(r"\+?\(?\d(?:[ ().\-\u00a0]{0,2}\d)*")
_NOT_PHONE = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}(?!\d)"
    r"|^\d{1,3}(?:\.\d{1,3}){3}$"
)
Span = tuple[int, int]
Run = tuple[int, int, int]  # start, end, how many digits
Judged = tuple[tuple[int, int, bool], ...]  # valid numbers: start, end, whether bare digits
_Detector = Callable[[str, int, int, list[Run]], Iterator[Span]]


@dataclass(slots=True)
class PhoneChecks:
    """How many more numbers libphonenumber may judge in this scan (or request)."""

    left: int

    @classmethod
    def for_size(cls, chars: int) -> PhoneChecks:
        """The budget for ``chars`` characters of text."""
        return cls(PHONE_CHECKS + chars // PHONE_CHECK_CHARS)


class PiiGuard(TextGuard):
    """Finds personal data; options ``kinds``, ``region`` (phones), ``private_ips``."""

    name: ClassVar[str] = "pii"
    max_span: ClassVar[int] = 256

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        opt.check_names(self.name, options, ("kinds", "region", "private_ips"))
        self.kinds = opt.choices(self.name, options, "kinds", KINDS, KINDS)
        self.region = opt.text(self.name, options, "region", "US").upper()
        if self.region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"pii: option 'region' is not a known region: {self.region!r}")
        self.private_ips = opt.flag(self.name, options, "private_ips", False)
        # Order matters: an earlier kind's candidate wins over a later one overlapping it.
        self._numeric = [kind for kind in _NUMERIC_KINDS if kind in self.kinds]
        # Windows libphonenumber judged lately: a stream scans the same text in
        # overlapping windows, and numbers recur. Shared by the threads using the guard
        # (each entry is a pure function of its window; a lost write only costs time).
        self._judged: dict[str, Judged] = {}

    def scan(self, text: str) -> list[Finding]:
        """Every validated piece of personal data in ``text``."""
        return scan_folded(partial(self._scan, checks=PhoneChecks.for_size(len(text))), text)

    def scan_all(self, texts: Sequence[str]) -> list[list[Finding]]:
        """``scan`` of each text, with one phone budget for all of them."""
        checks = PhoneChecks.for_size(sum(map(len, texts)))
        return [scan_folded(partial(self._scan, checks=checks), text) for text in texts]

    def _scan(self, text: str, checks: PhoneChecks) -> list[Finding]:
        # A candidate overlapping one of an earlier kind is dropped (an IBAN's digit
        # groups are not also a phone number); candidates of one kind may overlap each
        # other ("a@b.c@d.e"), and redaction keeps the longest.
        covered = Covered()
        found: list[Finding] = []
        if "email" in self.kinds:
            emails = list(_emails(text))
            found.extend(Finding(self.name, "email", start, end) for start, end in emails)
            covered.extend(emails)
        if self._numeric:
            # Everything else holds digits: look only near runs of them (one cheap pass),
            # not at every position of the text with every pattern.
            windows = list(_numeric_windows(text))
            detectors: dict[str, _Detector] = {
                "iban": _ibans,
                "credit_card": _cards,
                "national_id": _national_ids,
                "phone": partial(self._phones, checks=checks),
                "ip_address": self._ips,
            }
            for kind in self._numeric:
                find = detectors[kind]
                spans = [
                    span for low, high, runs in windows for span in find(text, low, high, runs)
                ]
                kept = [span for span in spans if not covered.overlaps(*span)]
                found.extend(Finding(self.name, kind, start, end) for start, end in kept)
                covered.extend(spans)
        found.sort(key=lambda finding: (finding.start, finding.end))
        return found

    def _phones(
        self, text: str, low: int, high: int, runs: list[Run], checks: PhoneChecks
    ) -> Iterator[Span]:
        for run_start, run_end, digits in runs:
            if digits < 7 or run_end - run_start > _PHONE_LONGEST:
                continue  # too short, or numbers run together past any phone number
            # A bare run of digits is a phone number only after a word that says so (the
            # same test as below, made before paying for a validation).
            if (
                text[run_start - 1 : run_start] not in ("+", "(")
                and text[run_start:run_end].isdigit()
                and not _PHONE_WORD.search(text, max(0, run_start - _PHONE_WORD_CHARS), run_start)
            ):
                continue
            start = max(low, run_start - _PHONE_MARGIN)
            window = text[start : min(high, run_end + _PHONE_MARGIN)]
            matches = self._judge(window, checks)
            if matches is None:
                yield from _phone_shaped(text, run_start, run_end)
                continue
            for match_start, match_end, bare in matches:
                first = start + match_start
                if text[first - 1 : first] == "#":
                    continue  # "#4155552671" is an order or ticket number
                if bare and not _PHONE_WORD.search(text, max(0, first - _PHONE_WORD_CHARS), first):
                    continue
                yield first, start + match_end

    def _judge(self, window: str, checks: PhoneChecks) -> Judged | None:
        """The valid phone numbers in ``window``; None when the budget is spent."""
        judged = self._judged.get(window)
        if judged is not None:
            return judged
        if checks.left <= 0:
            return None
        checks.left -= 1
        judged = tuple(
            (match.start, match.end, match.raw_string.isdigit())
            for match in phonenumbers.PhoneNumberMatcher(
                window, self.region, leniency=phonenumbers.Leniency.VALID
            )
        )
        if len(self._judged) >= _JUDGED_LIMIT:
            self._judged.clear()
        self._judged[window] = judged
        return judged

    def _ips(self, text: str, low: int, high: int, runs: list[Run]) -> Iterator[Span]:
        for match in _IPV4.finditer(text, low, high):
            start = match.start()
            if _VERSION_WORD.search(text, max(0, start - 12), start):
                continue
            if self._counts(ipaddress.IPv4Address(match.group())):
                yield match.span()
        for match in _IPV6.finditer(text, low, high):
            value = match.group()
            groups = value.split(":")
            if len(groups) < 3 or len([g for g in groups if g]) < 3:
                continue
            if "::" not in value and len(groups) != 8:
                continue  # "14:30:00" is a time: an address without "::" has 8 groups
            try:
                address = ipaddress.IPv6Address(value)
            except ValueError:
                continue
            if self._counts(address):
                yield match.span()

    def _counts(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return self.private_ips or address.is_global


def _emails(text: str) -> Iterator[Span]:
    """Emails, found from each "@" outwards rather than by a pattern tried everywhere."""
    for sign in _AT.finditer(text):
        at = sign.start()
        local = _LOCAL_PART.search(text, max(0, at - 64), at)
        match = _EMAIL.match(text, local.start(), at + 600) if local else None
        if match is None:
            continue
        start, end = match.span()
        if ".." in text[start:end] or _FILE_SUFFIX.fullmatch(match.group(1)):
            continue
        if text[end : end + 1] == ":" and text[end + 1 : end + 2] not in ("", " ", "\n"):
            continue  # "git@github.com:org/repo.git" is an SSH remote
        yield start, end


def _national_ids(text: str, low: int, high: int, runs: list[Run]) -> Iterator[Span]:
    return national_ids(text, low, high, _most_digits(runs))


def _most_digits(runs: list[Run]) -> int:
    return max(digits for _, _, digits in runs)


def _ibans(text: str, low: int, high: int, runs: list[Run]) -> Iterator[Span]:
    if _most_digits(runs) < 8:  # every country's account number has a longer run
        return
    for match in _IBAN.finditer(text, low, high):
        start, value = match.start(), match.group()
        # The pattern may take a word after a spaced IBAN ("... 0130 00 BIC"): drop
        # trailing groups until the number checks.
        while len(value) >= 15:
            if iban.is_valid(value):
                yield start, start + len(value)
                break
            if " " not in value:
                break
            value = value[: value.rindex(" ")]


def _cards(text: str, low: int, high: int, runs: list[Run]) -> Iterator[Span]:
    if _most_digits(runs) < 13:
        return
    for match in _CARD.finditer(text, low, high):
        value = match.group()
        digits = value.replace(" ", "").replace("-", "")
        if len(digits) < len(value):  # grouped: by one kind of separator, as cards are
            if " " in value and "-" in value:
                continue
            if tuple(map(len, _CARD_SEPARATOR.split(value))) not in _CARD_GROUPS:
                continue
        if _issuer_fits(digits) and luhn.is_valid(digits) and len(set(digits)) > 1:
            yield match.span()


def _issuer_fits(digits: str) -> bool:
    """Whether the number's prefix belongs to a card scheme that issues its length."""
    length, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16  # Mastercard
    if two in (34, 37):
        return length == 15  # American Express
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= length <= 19  # Diners Club
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 3528 <= four <= 3589:
        return 16 <= length <= 19  # Discover, JCB
    if two == 62 or two == 50 or 56 <= two <= 69:
        return 16 <= length <= 19  # UnionPay, Maestro
    return False


def _numeric_windows(text: str) -> Iterator[tuple[int, int, list[Run]]]:
    """Stretches of text around runs of 4+ digits (merged when close), with the runs."""
    low = high = -1
    runs: list[Run] = []
    for match in _NUMERIC.finditer(text):
        start, end = match.span()
        if runs and start - _MARGIN <= high:
            high = min(len(text), end + _MARGIN)
        else:
            if runs:
                yield low, high, runs
            low, high, runs = max(0, start - _MARGIN), min(len(text), end + _MARGIN), []
        runs.append((start, end, sum(map(str.isdigit, match.group()))))
    if runs:
        yield low, high, runs


def _phone_shaped(text: str, start: int, end: int) -> Iterator[Span]:
    """Past the validation budget: the parts of a run shaped as phone numbers are."""
    begin = start - 1 if text[start - 1 : start] in ("+", "(") else start
    for match in _PHONE_SHAPE.finditer(text, begin, end):
        value = match.group()
        if (
            7 <= sum(map(str.isdigit, value)) <= 15
            and not _NOT_PHONE.search(value)
            and text[match.start() - 1 : match.start()] != "#"
        ):
            yield match.span()
