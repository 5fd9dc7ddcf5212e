"""Credentials in text: API keys, private keys, JWTs, URL passwords, assigned secrets.

Our own patterns, not detect-secrets' plugins: used in-process, detect-secrets 1.5 took
about 10 ms per KB (it scans line by line through global settings, filters and a plugin
registry), returns secret values rather than positions (its private-key plugin matches
the BEGIN line only, so the key itself would survive redaction), and has no Anthropic,
Google or Hugging Face formats. The formats below follow each provider's published
prefix (linked per rule); a finding's span is exactly the credential, so redaction
removes it and nothing else. High-entropy values count only when assigned to a name
that says secret (``api_key = ...``), since random-looking strings (hashes, ids) are
everywhere in code.

Every scan reads a folded copy of the text (``fold.py``): a zero-width character inside a
key, or a key written in full-width letters, hides nothing. Each rule is tried only where
one of its literal anchors occurs, and like ``finditer`` no match starts inside the last
one, so a scan is linear in the text however its anchors repeat.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from tollway.guards import options as opt
from tollway.guards.base import Finding, TextGuard
from tollway.guards.fold import scan_folded
from tollway.guards.literals import Literals, lower
from tollway.guards.spans import Covered

# A token neither starts nor ends inside a longer run of token characters.
_B, _E = r"(?<![\w-])", r"(?![\w-])"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    anchors: tuple[str, ...]  # literals one of which every match holds
    pattern: re.Pattern[str]  # matched where an anchor is found, ``back`` characters before
    back: int = 0
    group: int = 0  # the group that is the secret
    check: Callable[[str], bool] | None = None
    folded: bool = False  # anchors are looked up in the lower-cased text


def _mixed(value: str) -> bool:
    """Random keys mix digits, upper and lower case; words and slugs do not."""
    return (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def _jwt(value: str) -> bool:
    """A JWT's first part is base64url JSON naming its algorithm (RFC 7519, 7515)."""
    header = value.split(".", 1)[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in Counter(value).values())


_PLACEHOLDERS = re.compile(
    r"(?i)x{4}|\*{3}|\.{3}|your|example|sample|placeholder|changeme|dummy|redacted|<|\$\{|\{\{"
    r"|%[sd]|^(?:none|null|nil|true|false|undefined|password|secret|token)$"
)


def _real_password(value: str) -> bool:
    return not _PLACEHOLDERS.search(value) and value.isprintable()


_STRIPE = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")
_ASSIGN_NAMES = (
    "passw", "pwd", "secret", "token", "apikey", "api_key", "api-key", "access_key",
    "accesskey", "access-key", "private_key", "privatekey", "credential", "auth_key",
    "authkey", "signing_key", "signingkey",
)  # fmt: skip

RULES = (
    # PEM blocks (RFC 7468), also inside JSON with escaped newlines (GCP service
    # accounts). Without its END line the block runs to the end of the text: a cut-off
    # key is still a secret, and a stream redactor then holds it back until it ends.
    # First, and never the reason another candidate is dropped: how far it reaches
    # depends on text far away, so only redaction (longest first) weighs it.
    _Rule(
        "private_key",
        ("-----BEGIN",),
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----(?=(?:\s|\\[rn])*"
            r"(?:[A-Za-z0-9+/=]{16}|Proc-Type|Version|Comment))[\s\S]*?"
            r"(?:-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
    ),
    # https://docs.anthropic.com/en/api/admin-api/apikeys (sk-ant-api03-..., sk-ant-admin01-...)
    _Rule(
        "anthropic_key",
        ("sk-ant-",),
        re.compile(_B + r"sk-ant-[a-z]{2,10}\d{0,3}-[\w-]{32,300}" + _E),
    ),
    # https://platform.openai.com/docs/api-reference/authentication (sk-proj-..., legacy sk-...)
    _Rule(
        "openai_key",
        ("sk-",),
        re.compile(_B + r"sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?[\w-]{20,300}" + _E),
        check=_mixed,
    ),
    # https://cloud.google.com/docs/authentication/api-keys
    _Rule("google_api_key", ("AIza",), re.compile(_B + r"AIza[\w-]{35}" + _E)),
    _Rule("google_oauth_secret", ("GOCSPX-",), re.compile(_B + r"GOCSPX-[\w-]{28}" + _E)),
    # https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/
    _Rule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(_B + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E),
    ),
    _Rule("github_token", ("github_pat_",), re.compile(_B + r"github_pat_\w{50,255}" + _E)),
    _Rule("gitlab_token", ("glpat-",), re.compile(_B + r"glpat-[\w-]{20,64}" + _E)),
    # https://api.slack.com/authentication/token-types
    _Rule("slack_token", ("xox",), re.compile(_B + r"xox[abposre]-[A-Za-z0-9-]{10,250}" + _E)),
    _Rule(
        "slack_webhook",
        ("https://hooks.slack.com/services/",),
        re.compile(r"https://hooks\.slack\.com/services/T\w+/B\w+/\w{16,64}"),
    ),
    # https://docs.stripe.com/keys
    _Rule("stripe_key", _STRIPE, re.compile(_B + r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}" + _E)),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html (key ids)
    _Rule(
        "aws_access_key",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    # A secret access key is 40 base64 characters: only next to its name.
    _Rule(
        "aws_secret_key",
        ("aws", "secret_access", "secretaccess"),
        re.compile(
            r"(?i:aws.{0,20}?(?:secret|sk)|secret_?access_?key)[\w\"']{0,12}\s{0,4}(?:[:=]|=>)"
            r"\s{0,4}[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
        folded=True,
    ),
    # https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string
    _Rule(
        "azure_key",
        ("AccountKey=", "SharedAccessKey="),
        re.compile(r"(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{40,88}={0,2})"),
        group=1,
    ),
    # Entra ID client secrets: three characters, a digit, "Q~", then 31-34 more.
    _Rule(
        "azure_client_secret",
        ("Q~",),
        re.compile(r"(?<![\w~.-])[\w~.-]{3}\dQ~[\w~.-]{31,34}(?![\w~-])"),
        back=4,
    ),
    # https://huggingface.co/docs/hub/security-tokens
    _Rule(
        "huggingface_token", ("hf_",), re.compile(_B + r"hf_[A-Za-z0-9]{30,40}" + _E), check=_mixed
    ),
    _Rule("npm_token", ("npm_",), re.compile(_B + r"npm_[A-Za-z0-9]{36}" + _E)),
    _Rule(
        "pypi_token",
        ("pypi-AgEIcHlwaS5vcmc",),
        re.compile(_B + r"pypi-AgEIcHlwaS5vcmc[\w-]{50,}" + _E),
    ),
    _Rule("sendgrid_key", ("SG.",), re.compile(_B + r"SG\.[\w-]{22}\.[\w-]{43}" + _E)),
    _Rule(
        "jwt",
        ("eyJ",),
        re.compile(_B + r"eyJ[\w-]{8,4096}\.[\w-]{8,16384}\.[\w-]{0,1024}" + _E),
        check=_jwt,
    ),
    # scheme://user:password@host (RFC 3986 userinfo): the password is the secret.
    _Rule(
        "url_credentials",
        ("://",),
        re.compile(r"(?<=[A-Za-z0-9])://[^\s:/?#@\"'<>]{0,128}:([^\s/?#@\"'<>]{1,128})@\w"),
        group=1,
        check=_real_password,
    ),
    _Rule(
        "authorization",
        ("authorization",),
        re.compile(
            r"(?i)authorization[\"']?\s{0,4}:\s{0,4}[\"']?(?:bearer|basic|token)\s+"
            r"([A-Za-z0-9._~+/=-]{16,2048})"
        ),
        group=1,
        check=lambda value: _real_password(value) and any(c.isdigit() for c in value),
        folded=True,
    ),
)
# After a secret-sounding name: an assignment (= : := =>) and a value of 8-1024 value
# characters. The pattern reads the first eight; the rest of the value is the run of value
# characters that follows, up to 1024 in all (``_VALUE_RUN``).
_VALUE = r"[^\s\"'`,;()\[\]{}<>]"
_ASSIGNMENT = r"[\w.-]{0,32}?[\"'`]?\s{0,4}(?::=|=>|=|:)\s{0,4}[\"'`]?"
_ASSIGNED = re.compile(f"{_ASSIGNMENT}({_VALUE}{{8}})")
_VALUE_RUN = re.compile(_VALUE + "*")
_LONGEST_VALUE = 1024
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")
_HEX = re.compile(r"[0-9a-fA-F]+")
KINDS = (*dict.fromkeys(rule.kind for rule in RULES), "assigned_secret")


_CASED = Literals(anchor for rule in RULES if not rule.folded for anchor in rule.anchors)
_FOLDED = Literals(
    (*(anchor for rule in RULES if rule.folded for anchor in rule.anchors), *_ASSIGN_NAMES)
)


class SecretsGuard(TextGuard):
    """Finds credentials; options ``kinds`` and ``min_entropy`` (bits per character)."""

    name: ClassVar[str] = "secrets"
    max_span: ClassVar[int] = 256

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        opt.check_names(self.name, options, ("kinds", "min_entropy"))
        self.kinds = opt.choices(self.name, options, "kinds", KINDS, KINDS)
        self.min_entropy = opt.number(
            self.name, options, "min_entropy", 3.5, minimum=1.0, maximum=6.0
        )
        self._rules = [rule for rule in RULES if rule.kind in self.kinds]
        self._assigned = "assigned_secret" in self.kinds
        self._needs_folded = self._assigned or any(rule.folded for rule in self._rules)

    def scan(self, text: str) -> list[Finding]:
        """Every credential in ``text``; a specific format wins over a generic one."""
        return scan_folded(self._scan, text)

    def _scan(self, text: str) -> list[Finding]:
        # A candidate overlapping one of an earlier rule is dropped (an "Authorization:
        # Bearer" JWT is reported as a JWT); redaction keeps the longest of any that
        # overlap within a rule.
        # Each rule is tried only where its literal anchor occurs (all anchors found in
        # one pass), not at every position of the text.
        covered = Covered()
        found: list[Finding] = []
        cased = _CASED.find(text)
        folded = _FOLDED.find(lower(text)) if self._needs_folded else {}
        for rule in self._rules:
            positions = folded if rule.folded else cased
            if not any(anchor in positions for anchor in rule.anchors):
                continue
            spans = []
            reach = 0  # like finditer: no match starts inside the last one taken
            for at in sorted(at for anchor in rule.anchors for at in positions.get(anchor, ())):
                if at - rule.back < reach:
                    continue
                match = rule.pattern.match(text, at - rule.back)
                if match is None:
                    continue
                if rule.check is None or rule.check(match.group(rule.group)):
                    spans.append(match.span(rule.group))
                    reach = match.end()
            self._keep(rule.kind, spans, covered, found, covers=rule.kind != "private_key")
        if self._assigned:
            self._keep("assigned_secret", self._assignments(text, folded), covered, found)
        found.sort(key=lambda finding: (finding.start, finding.end))
        return found

    def _assignments(self, text: str, folded: dict[str, list[int]]) -> list[tuple[int, int]]:
        """Values assigned to secret-sounding names that look like real secrets."""
        spans = []
        names = sorted((at, name) for name in _ASSIGN_NAMES for at in folded.get(name, ()))
        reach = 0  # like finditer: a name inside the last value read is part of it
        run = (0, 0)  # the last run of value characters measured
        for at, name in names:
            if at < reach:
                continue
            match = _ASSIGNED.match(text, at + len(name))
            if match is None:
                continue
            start = match.start(1)
            if not run[0] <= start < run[1]:
                measured = _VALUE_RUN.match(text, start)
                run = (start, measured.end() if measured else start)
            end = min(run[1], start + _LONGEST_VALUE)
            reach = end
            if self._secret_value(name, text[start:end]):
                spans.append((start, end))
        return spans

    def _keep(
        self,
        kind: str,
        spans: list[tuple[int, int]],
        covered: Covered,
        found: list[Finding],
        *,
        covers: bool = True,
    ) -> None:
        """Add the spans that no earlier rule's candidate overlaps (once each)."""
        if not spans:
            return
        kept = {span for span in spans if not covered.overlaps(*span)}
        found.extend(Finding(self.name, kind, start, end) for start, end in sorted(kept))
        if covers:
            covered.extend(spans)

    def _secret_value(self, name: str, value: str) -> bool:
        """Whether a value assigned to a secret-sounding name looks like a real one."""
        if _PLACEHOLDERS.search(value) or value.startswith(("$", "%", "@", "os.", "process.")):
            return False
        if name in ("passw", "pwd"):  # passwords: people choose these
            classes = sum(
                (
                    any(c.islower() for c in value),
                    any(c.isupper() for c in value),
                    any(c.isdigit() for c in value),
                    any(not c.isalnum() for c in value),
                )
            )
            return classes >= 3
        if _IDENTIFIER.fullmatch(value) and not any(c.isdigit() for c in value):
            return False  # a variable or a dotted path, e.g. settings.api_key
        if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
            return False
        if _HEX.fullmatch(value):
            return len(value) >= 32 and entropy(value) >= self.min_entropy - 0.5
        return len(value) >= 16 and entropy(value) >= self.min_entropy
