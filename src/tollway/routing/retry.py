"""Which failures are worth another try, and how long to wait first."""

from __future__ import annotations

import random

from tollway.config import RetryConfig
from tollway.errors import (
    TollwayError,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejected,
)
from tollway.providers.transport import RESPONSE_TOO_LARGE
from tollway.sse import EVENT_TOO_LARGE

_MAX_RETRY_AFTER = 60.0
# An answer over the gateway's size limits: asking again would pay for it again, and it
# says nothing about the upstream's health.
_TOO_LARGE = frozenset({RESPONSE_TOO_LARGE, EVENT_TOO_LARGE})


def retryable(error: TollwayError) -> bool:
    """429, 5xx, timeouts and connection failures; never the client's own mistakes, nor
    an answer too large for the gateway."""
    return isinstance(error, UpstreamError) and error.code not in _TOO_LARGE


def unhealthy(error: TollwayError) -> bool:
    """Whether the failure counts against the deployment's health (circuit breaker): not
    when the gateway's own pool was busy, nor when the answer was merely too large."""
    return (
        isinstance(error, UpstreamError)
        and not isinstance(error, UpstreamRejected | UpstreamBusy)
        and error.code not in _TOO_LARGE
    )


def backoff(config: RetryConfig, attempt: int, error: TollwayError, honour: bool = True) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): exponential with full
    jitter, or the upstream's Retry-After when it gave one and ``honour`` is set (the
    retry goes to the deployment that asked for the wait)."""
    retry_after = error.headers.get("retry-after") if honour else None
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER)
        except ValueError:
            pass
    ceiling = min(config.backoff_max, config.backoff_base * (2**attempt))
    return random.uniform(0, ceiling)  # noqa: S311
