"""A per-deployment circuit breaker.

    closed --(N consecutive failures)--> open --(cooldown)--> half-open
    half-open --(probe succeeds)--> closed;  half-open --(probe fails)--> open

While open, the deployment is skipped; half-open lets exactly one request through.
"""

from __future__ import annotations

import time
from enum import StrEnum


class CircuitState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one deployment."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._state = CircuitState.CLOSED

    @property
    def state(self) -> CircuitState:
        """The state now (an open breaker past its cooldown reads half-open)."""
        if (
            self._state is CircuitState.OPEN
            and time.monotonic() - self._opened_at >= self._cooldown
        ):
            self._state = CircuitState.HALF_OPEN
            self._probing = False
        return self._state

    def allows(self) -> bool:
        """Whether a request may go to this deployment now."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        return state is CircuitState.HALF_OPEN and not self._probing

    def begin(self) -> None:
        """A request is going out (in half-open, it is the probe)."""
        if self.state is CircuitState.HALF_OPEN:
            self._probing = True

    def success(self) -> None:
        """The deployment answered."""
        self._failures = 0
        self._probing = False
        self._state = CircuitState.CLOSED

    def abandon(self) -> None:
        """A request ended without a verdict on health (the client's own error, or the
        client left): a half-open probe slot is freed for the next request."""
        self._probing = False

    def failure(self) -> None:
        """The deployment failed in a way that says it is unhealthy."""
        self._failures += 1
        self._probing = False
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._state = CircuitState.OPEN
            self._opened_at = time.monotonic()
