"""One deployment (provider + upstream model) and what this process knows of its health."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tollway.config import DeploymentConfig
from tollway.providers.base import Provider
from tollway.routing.circuit import CircuitBreaker

_EWMA_ALPHA = 0.2


@dataclass(eq=False)
class Deployment:
    """A routable target with its circuit breaker and running statistics."""

    provider: Provider
    upstream_model: str
    weight: float
    breaker: CircuitBreaker
    rpm: int | None = None
    max_parallel: int | None = None
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    latency_ewma_ms: float | None = None
    last_error: str | None = None
    _minute: int = 0
    _minute_count: int = 0
    _recent: list[bool] = field(default_factory=list)

    @classmethod
    def build(
        cls, config: DeploymentConfig, provider: Provider, model: str, breaker: CircuitBreaker
    ) -> Deployment:
        """From config."""
        return cls(
            provider=provider,
            upstream_model=model,
            weight=config.weight,
            breaker=breaker,
            rpm=config.rpm,
            max_parallel=config.max_parallel,
        )

    @property
    def label(self) -> str:
        """``provider/model``."""
        return f"{self.provider.name}/{self.upstream_model}"

    def available(self) -> bool:
        """Whether the breaker and this deployment's own limits let a request through."""
        if not self.breaker.allows():
            return False
        if self.max_parallel is not None and self.in_flight >= self.max_parallel:
            return False
        if self.rpm is not None:
            minute = int(time.time() // 60)
            if minute == self._minute and self._minute_count >= self.rpm:
                return False
        return True

    def begin(self) -> float:
        """A request starts; returns its start time."""
        self.breaker.begin()
        self.in_flight += 1
        self.requests += 1
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._minute_count = minute, 0
        self._minute_count += 1
        return time.perf_counter()

    def end(self, started: float, ok: bool, error: str | None = None, health: bool = True) -> None:
        """A request ended; ``health`` False means the failure was the client's doing."""
        self.in_flight = max(self.in_flight - 1, 0)
        if ok:
            elapsed = (time.perf_counter() - started) * 1000
            previous = self.latency_ewma_ms
            self.latency_ewma_ms = (
                elapsed if previous is None else previous + _EWMA_ALPHA * (elapsed - previous)
            )
            self.breaker.success()
        elif health:
            self.failures += 1
            self.last_error = error
            self.breaker.failure()
        else:
            self.breaker.abandon()
        self._recent = [*self._recent[-99:], ok or not health]

    def snapshot(self) -> dict[str, Any]:
        """State for ``GET /api/v1/providers``."""
        recent = self._recent
        return {
            "provider": self.provider.name,
            "model": self.upstream_model,
            "weight": self.weight,
            "state": self.breaker.state.value,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": round(1 - sum(recent) / len(recent), 4) if recent else 0.0,
            "latency_ewma_ms": round(self.latency_ewma_ms, 3) if self.latency_ewma_ms else None,
            "last_error": self.last_error,
        }
