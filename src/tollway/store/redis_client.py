"""The Redis client the gateway shares state through (budgets, limits, cache, switches),
built only when ``redis_url`` is set: deployments that share nothing never load Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Redis must answer fast or be treated as down: a hung Redis must not hang every call.
REDIS_TIMEOUT_SECONDS = 2.0


def connect_redis(url: str) -> Redis:
    """A pooled client that reconnects once after a Redis restart."""
    # Only deployments that share state load Redis.
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A pooled connection a restarted Redis closed fails on first use: reconnect and send
    # again (the scripts are safe to repeat: a hold is keyed by its call).
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError],
    )
