"""Rate limits: requests per minute, tokens per minute, parallel requests.

Per-minute limits use a sliding-window counter (the current minute's count plus the
previous minute's, weighted by how much of it is still inside the last 60 s): smooth,
O(1) memory, and the same arithmetic in-process and in Redis (``redis_limits.py``).
Requests are counted at admission; tokens when the call settles, so ``tpm`` admits a
request while the window still has room.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from tollway.errors import RateLimited

WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one scope (a key or a project)."""

    scope: str
    rpm: int | None
    tpm: int | None
    max_parallel: int | None

    @property
    def empty(self) -> bool:
        """Whether nothing is limited."""
        return self.rpm is None and self.tpm is None and self.max_parallel is None


@dataclass(slots=True)
class Ticket:
    """An admitted request's hold on its scopes' limits."""

    scopes: list[Limits]
    headers: dict[str, str] = field(default_factory=dict)
    released: bool = False


def limit_headers(limits: Limits, requests_used: float, tokens_used: float) -> dict[str, str]:
    """``x-ratelimit-*`` headers (OpenAI's names) for the most specific scope."""
    headers: dict[str, str] = {}
    if limits.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(
            max(limits.rpm - math.ceil(requests_used), 0)
        )
    if limits.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        left = max(limits.tpm - math.ceil(tokens_used), 0)
        headers["x-ratelimit-remaining-tokens"] = str(left)
    return headers


def refusal(limits: Limits, what: str, retry_after: float, extra: dict[str, str]) -> RateLimited:
    """The 429 for a scope that is over ``what``."""
    seconds = max(1, math.ceil(retry_after))
    owner = "API key" if limits.scope.startswith("key:") else "project"
    headers = {**extra, "retry-after": str(seconds)}
    return RateLimited(
        f"Rate limit reached: the {owner}'s {what}. Retry after {seconds} s.",
        headers=headers,
    )


class _Window:
    """A sliding-window counter."""

    __slots__ = ("current", "previous", "start")

    def __init__(self, now: float) -> None:
        self.start = now - (now % WINDOW)
        self.current = 0.0
        self.previous = 0.0

    def advance(self, now: float) -> None:
        start = now - (now % WINDOW)
        if start == self.start:
            return
        self.previous = self.current if start - self.start == WINDOW else 0.0
        self.current, self.start = 0.0, start

    def used(self, now: float) -> float:
        self.advance(now)
        return self.previous * (1 - (now - self.start) / WINDOW) + self.current

    def retry_after(self, now: float, limit: float, need: float) -> float:
        """Seconds until ``need`` more fits under ``limit``."""
        self.advance(now)
        elapsed = now - self.start
        if self.current + need > limit or self.previous == 0:
            return WINDOW - elapsed
        excess = self.used(now) + need - limit
        return min(excess / (self.previous / WINDOW), WINDOW - elapsed)


class Limiter:
    """Admission against rate limits; this class keeps state in-process."""

    store = "memory"

    def __init__(self) -> None:
        self._requests: dict[str, _Window] = {}
        self._tokens: dict[str, _Window] = {}
        self._parallel: dict[str, int] = {}

    def _window(self, table: dict[str, _Window], scope: str, now: float) -> _Window:
        window = table.get(scope)
        if window is None:
            window = table[scope] = _Window(now)
        return window

    async def acquire(self, scopes: list[Limits]) -> Ticket:
        """Admit one request against every scope, or raise RateLimited."""
        now = time.time()
        headers: dict[str, str] = {}
        for limits in scopes:
            requests = self._window(self._requests, limits.scope, now)
            tokens = self._window(self._tokens, limits.scope, now)
            used_requests, used_tokens = requests.used(now), tokens.used(now)
            if not headers:
                headers = limit_headers(limits, used_requests + 1, used_tokens)
            if limits.rpm is not None and used_requests + 1 > limits.rpm:
                wait = requests.retry_after(now, limits.rpm, 1)
                raise refusal(limits, f"limit of {limits.rpm} requests per minute", wait, headers)
            if limits.tpm is not None and used_tokens >= limits.tpm:
                wait = tokens.retry_after(now, limits.tpm, 1)
                raise refusal(limits, f"limit of {limits.tpm} tokens per minute", wait, headers)
            if (
                limits.max_parallel is not None
                and self._parallel.get(limits.scope, 0) >= limits.max_parallel
            ):
                raise refusal(
                    limits, f"limit of {limits.max_parallel} parallel requests", 1, headers
                )
        for limits in scopes:
            self._requests[limits.scope].current += 1
            self._parallel[limits.scope] = self._parallel.get(limits.scope, 0) + 1
        return Ticket(scopes, headers)

    async def release(self, ticket: Ticket, tokens: int) -> None:
        """End the request: free its parallel slot and count its tokens."""
        if ticket.released:
            return
        ticket.released = True
        now = time.time()
        for limits in ticket.scopes:
            self._parallel[limits.scope] = max(self._parallel.get(limits.scope, 1) - 1, 0)
            if tokens:
                self._window(self._tokens, limits.scope, now).current += tokens
