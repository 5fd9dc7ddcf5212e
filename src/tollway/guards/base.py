"""What every guard is: a name, a way to find problems, and what to do about them.

A guard looks at the text of a request (and, for text guards, of a response) and
returns findings. What happens next is its *action*, configured globally and overridden
per project or key:

    block   the call is refused: 400 in the endpoint's dialect, code ``guard_<name>``
    redact  each finding's span is replaced before the text goes on (requests before
            forwarding, responses before the client sees them, streamed ones too)
    flag    the call goes on unchanged; the findings are recorded with it
    off     the guard does not run

Two kinds: ``TextGuard`` scans plain text (PII, secrets, prompt injection) and can
redact; ``RequestGuard`` checks the request as a whole (limits) and can only block or
flag.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class Action(StrEnum):
    """What a guard does with its findings."""

    BLOCK = "block"
    REDACT = "redact"
    FLAG = "flag"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem a guard found: what kind, where in the text, how sure."""

    guard: str
    kind: str  # e.g. "email", "aws_access_key", "injection", "max_messages"
    start: int = 0
    end: int = 0
    score: float | None = None


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a request guard may look at: the endpoint, the parsed body, its texts."""

    endpoint: str  # the Endpoint value, e.g. "chat.completions"
    payload: dict[str, Any]
    texts: tuple[str, ...]


class TextGuard(ABC):
    """Finds problems in text; a finding's span can be redacted."""

    name: ClassVar[str]
    # Longest span a finding can have: a stream redactor holds back this many
    # characters so a finding split across two events is still seen whole.
    max_span: ClassVar[int] = 256
    # Whether answers are screened too (redacted or flagged, streamed ones as they go).
    # A guard that judges a text as a whole (injection) screens requests only.
    screens_responses: ClassVar[bool] = True
    # Which texts of a request it reads, by who wrote them (TextSlot.role: system, user,
    # assistant or tool; developer messages are system, function messages tool); None:
    # all of them.
    roles: ClassVar[frozenset[str] | None] = None

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text`` (spans index into it)."""

    def scan_all(self, texts: Sequence[str]) -> list[list[Finding]]:
        """``scan`` of each of the texts of one request (a guard whose costly work must
        be bounded per request rather than per text overrides this)."""
        return [self.scan(text) for text in texts]

    def replacement(self, finding: Finding) -> str:
        """What a redacted span becomes."""
        return f"[REDACTED:{finding.kind}]"


class RequestGuard(ABC):
    """Checks a request as a whole; it can block or flag, not redact."""

    name: ClassVar[str]
    # Built with ``tokens=`` (the gateway's TokenCounter) when true.
    wants_tokens: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def check(self, request: RequestView) -> list[Finding]:
        """The request's problems (empty when it passes)."""
