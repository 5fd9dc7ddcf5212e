"""MemoryCache: least recently used out first, bounded by bytes; lifetimes on a clock the
test controls."""

from __future__ import annotations

from tollway.cache.entry import ENTRY_OVERHEAD, Entry, Tokens
from tollway.cache.store import MemoryCache
from tollway.dialects.endpoints import Endpoint


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(data_bytes: int, tag: str = "") -> Entry:
    """An entry whose size is ``data_bytes`` plus the fixed overhead."""
    body = (b'{"t":"' + tag.encode() + b'","pad":"').ljust(data_bytes - 2, b"x") + b'"}'
    assert len(body) == data_bytes
    return Entry(Endpoint.EMBEDDINGS, Tokens(5), 0.0, body=body)


SIZE = 1000 + ENTRY_OVERHEAD  # the size of entry(1000)


async def test_get_returns_what_was_put() -> None:
    cache = MemoryCache(max_bytes=10 * SIZE)
    item = entry(1000)
    assert await cache.get("k") is None
    await cache.put("k", item, ttl=60)
    assert await cache.get("k") is item
    assert len(cache) == 1 and cache.bytes == SIZE


async def test_least_recently_used_is_evicted_first_by_bytes() -> None:
    cache = MemoryCache(max_bytes=3 * SIZE)
    for name in ("a", "b", "c"):
        await cache.put(name, entry(1000, name), ttl=60)
    assert await cache.get("a") is not None  # a is now the most recently used
    await cache.put("d", entry(1000, "d"), ttl=60)
    assert await cache.get("b") is None
    assert [await cache.get(n) is not None for n in ("a", "c", "d")] == [True, True, True]
    assert cache.bytes == 3 * SIZE
    # A bigger entry evicts as many as it needs, least recently used first: a, then c.
    await cache.get("d")
    await cache.put("big", entry(2 * SIZE - ENTRY_OVERHEAD), ttl=60)
    assert await cache.get("c") is None and await cache.get("a") is None
    assert await cache.get("d") is not None and await cache.get("big") is not None
    assert cache.bytes == 3 * SIZE


async def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = MemoryCache(max_bytes=3 * SIZE)
    await cache.put("k", entry(1000, "one"), ttl=60)
    await cache.put("k", entry(2000, "two"), ttl=60)
    assert len(cache) == 1 and cache.bytes == 2000 + ENTRY_OVERHEAD
    found = await cache.get("k")
    assert found is not None and found.body is not None and b"two" in found.body


async def test_entries_over_the_entry_limit_are_not_kept() -> None:
    cache = MemoryCache(max_bytes=100 * SIZE, max_entry_bytes=SIZE)
    await cache.put("ok", entry(1000), ttl=60)
    await cache.put("big", entry(1001), ttl=60)
    assert await cache.get("ok") is not None and await cache.get("big") is None
    # Nor anything larger than the whole cache, whatever the entry limit says.
    small = MemoryCache(max_bytes=SIZE, max_entry_bytes=10 * SIZE)
    await small.put("big", entry(1001), ttl=60)
    assert len(small) == 0 and small.bytes == 0


async def test_ttl_is_checked_on_read() -> None:
    clock = Clock()
    cache = MemoryCache(max_bytes=10 * SIZE, clock=clock)
    await cache.put("short", entry(1000), ttl=5)
    await cache.put("long", entry(1000), ttl=50)
    clock.now += 4.999
    assert await cache.get("short") is not None
    clock.now += 0.001
    assert await cache.get("short") is None
    assert len(cache) == 1 and cache.bytes == SIZE  # the expired one is gone for good
    clock.now += 45
    assert await cache.get("long") is None
    assert len(cache) == 0 and cache.bytes == 0


async def test_a_put_renews_the_lifetime_and_zero_ttl_keeps_nothing() -> None:
    clock = Clock()
    cache = MemoryCache(max_bytes=10 * SIZE, clock=clock)
    await cache.put("k", entry(1000), ttl=5)
    clock.now += 4
    await cache.put("k", entry(1000), ttl=5)
    clock.now += 4
    assert await cache.get("k") is not None
    await cache.put("none", entry(1000), ttl=0)
    await cache.put("negative", entry(1000), ttl=-1)
    assert await cache.get("none") is None and await cache.get("negative") is None


async def test_expired_entries_are_evicted_like_any_other() -> None:
    clock = Clock()
    cache = MemoryCache(max_bytes=2 * SIZE, clock=clock)
    await cache.put("old", entry(1000), ttl=1)
    await cache.put("live", entry(1000), ttl=100)
    clock.now += 10
    await cache.put("new", entry(1000), ttl=100)
    assert await cache.get("live") is not None and await cache.get("new") is not None
    assert cache.bytes == 2 * SIZE
