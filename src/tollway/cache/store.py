"""Where entries are kept: one small interface, in process memory or in Redis.

The cache must never fail a call: a store that cannot answer is a miss, a store that
cannot keep an entry drops it, and both say so in the log (at most every
``WARN_EVERY`` seconds per store, so an outage does not flood it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from tollway.cache.codec import decode, encode
from tollway.cache.entry import Entry
from tollway.store.failures import StoreFailures

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollway.cache")
Clock = Callable[[], float]
MAX_BYTES = 64 * 1024 * 1024
MAX_ENTRY_BYTES = 1024 * 1024
REDIS_PREFIX = "tollway:cache:"
# A cache lookup sits in front of every call: past this, Redis counts as down, and is
# left alone for REDIS_PAUSE seconds (misses at once) so an outage adds no latency.
REDIS_TIMEOUT = 0.25
REDIS_PAUSE = 1.0
WARN_EVERY = 10.0


class CacheStore(ABC):
    """Keeps entries by key for a time."""

    @abstractmethod
    async def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None; never raises."""

    @abstractmethod
    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        """Keep ``entry`` under ``key`` for ``ttl`` seconds (if it fits); never raises."""


class MemoryCache(CacheStore):
    """Entries in this process, least recently used evicted first, bounded by bytes.

    One event loop owns it (no locks). An entry's lifetime is checked when it is read;
    expired entries still count until then or until they are the least recently used.
    """

    def __init__(
        self,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._clock = clock
        self._items: OrderedDict[str, tuple[Entry, float, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> Entry | None:
        """The entry under ``key`` while it lives (then the most recently used)."""
        item = self._items.get(key)
        if item is None:
            return None
        entry, expires, size = item
        if self._clock() >= expires:
            del self._items[key]
            self.bytes -= size
            return None
        self._items.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        """Keep ``entry``, evicting the least recently used until it fits."""
        size = entry.size
        if ttl <= 0 or size > self.max_entry_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        while self._items and self.bytes + size > self.max_bytes:
            _, (_, _, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted
        self._items[key] = (entry, self._clock() + ttl, size)
        self.bytes += size


class RedisCache(CacheStore):
    """Entries shared by every process on one Redis, encoded compactly (``codec``),
    each under ``prefix + key`` with its lifetime set by the same ``SET``."""

    def __init__(
        self,
        client: Redis,
        prefix: str = REDIS_PREFIX,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        timeout: float = REDIS_TIMEOUT,
        pause: float = REDIS_PAUSE,
        failures: StoreFailures | None = None,
    ) -> None:
        # Imported here: only deployments that share state load Redis.
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        self._client = client
        self.prefix = prefix
        self.max_entry_bytes = max_entry_bytes
        self._timeout = timeout
        self._pause = pause
        self._failures = failures or StoreFailures()
        self._errors = (RedisError, OSError, TimeoutError)
        # Failures that mean Redis is unreachable (others are Redis answering: no pause).
        self._unreachable = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY

    async def get(self, key: str) -> Entry | None:
        """The entry under ``key``; a miss when Redis fails or holds something else."""
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._client.get(self.prefix + key)
        except self._errors as error:
            self._failed("get", error)
            return None
        if not isinstance(data, bytes):
            return None  # a miss, or a client that decodes replies: not ours
        return decode(data, self.max_entry_bytes)

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        """Keep ``entry`` for ``ttl`` seconds (to the millisecond); dropped on failure."""
        if ttl <= 0 or entry.size > self.max_entry_bytes or time.monotonic() < self._down_until:
            return
        data = encode(entry)
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.set(self.prefix + key, data, px=max(1, round(ttl * 1000)))
        except self._errors as error:
            self._failed("put", error)

    def _failed(self, operation: str, error: BaseException) -> None:
        self._failures.report("redis", f"cache_{operation}")
        now = time.monotonic()
        if isinstance(error, self._unreachable):
            self._down_until = now + self._pause
        if now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        log.warning(
            "response cache unavailable; calls go to the providers meanwhile",
            extra={"fields": {"operation": f"redis {operation}", "error": type(error).__name__}},
        )
