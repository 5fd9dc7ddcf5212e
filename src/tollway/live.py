"""The config in force for the proxy path, replaced whole on reload; every call keeps the
one it started on.

A ``Generation`` is what one version of the settings builds for calls: the providers
(each with its connection pool), the router, the guards, the pipeline that uses them and
the model catalog. ``Live.handle`` runs a call on the current generation and holds that
generation until the call has ended, streams included, so a reload never changes the
providers, routes or guards under a call in flight. A generation replaced by a reload
is retired; once its last call has ended, the providers no live generation shares are
closed.

``Live`` also counts the calls in flight, so that shutdown can let the calls cut at the
deadline write their spend records before the journal is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from tollway.asgi import Receive, Scope, Send
from tollway.catalog import Catalog
from tollway.dialects.endpoints import Endpoint
from tollway.guards.runner import Guards
from tollway.pipeline import Pipeline
from tollway.providers.base import Provider
from tollway.routing.router import Router
from tollway.settings import Settings

log = logging.getLogger("tollway.live")
# At shutdown, calls cut at the deadline get this long to write their spend records.
SETTLE_SECONDS = 10.0


@dataclass(eq=False)
class Generation:
    """What one version of the settings builds for the proxy path."""

    settings: Settings
    providers: dict[str, Provider]
    router: Router
    guards: Guards
    pipeline: Pipeline
    catalog: Catalog
    calls: int = 0  # in flight on this generation
    retired: bool = False


def reusable_providers(previous: Generation | None, settings: Settings) -> dict[str, Provider]:
    """The previous generation's providers whose configuration ``settings`` leaves as it
    was (same account, endpoint, timeouts and bounds): they keep their connection pools."""
    if previous is None:
        return {}
    before = previous.settings
    same_bounds = (
        before.timeouts == settings.timeouts
        and before.max_response_bytes == settings.max_response_bytes
        and before.max_event_bytes == settings.max_event_bytes
    )
    if not same_bounds:
        return {}
    return {
        name: provider
        for name, provider in previous.providers.items()
        if settings.providers.get(name) == before.providers.get(name)
    }


class Live:
    """The current generation, the retired ones still serving calls, and the calls in
    flight on them."""

    def __init__(self, first: Generation) -> None:
        self.current = first
        self._users: dict[int, int] = {}  # provider id -> live generations using it
        self._providers: dict[int, Provider] = {}
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._adopt(first)

    @property
    def in_flight(self) -> int:
        """Proxy calls running now, on any generation."""
        return self._in_flight

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one proxy call on the current generation, held until the call ends."""
        generation = self.current
        generation.calls += 1
        self._in_flight += 1
        try:
            await generation.pipeline.handle(endpoint, scope, receive, send)
        finally:
            generation.calls -= 1
            self._in_flight -= 1
            if generation.retired and generation.calls == 0:
                self._bury(generation)
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()

    def swap(self, generation: Generation) -> Generation:
        """Make ``generation`` the one new calls start on; returns the one it replaced,
        which serves its calls in flight to their end."""
        old, self.current = self.current, generation
        self._adopt(generation)
        old.retired = True
        if old.calls == 0:
            self._bury(old)
        return old

    def discard(self, providers: Mapping[str, Provider]) -> None:
        """Close providers built for a generation that never went live (those a live
        generation uses stay open)."""
        for provider in providers.values():
            if id(provider) not in self._users:
                self._spawn(provider.aclose())

    async def settle(self, within: float = SETTLE_SECONDS) -> int:
        """Wait up to ``within`` seconds for the calls in flight to end (they write their
        spend records as they end); how many are still running."""
        if self._in_flight:
            self._idle = asyncio.Event()
            try:
                async with asyncio.timeout(within):
                    await self._idle.wait()
            except TimeoutError:
                log.error("calls still running", extra={"fields": {"calls": self._in_flight}})
        return self._in_flight

    async def aclose(self) -> None:
        """Close every provider still open."""
        providers = list(self._providers.values())
        self._providers.clear()
        self._users.clear()
        for provider in providers:
            self._spawn(provider.aclose())
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _adopt(self, generation: Generation) -> None:
        for provider in generation.providers.values():
            key = id(provider)
            self._providers[key] = provider
            self._users[key] = self._users.get(key, 0) + 1

    def _bury(self, generation: Generation) -> None:
        for provider in generation.providers.values():
            key = id(provider)
            left = self._users.get(key, 0) - 1
            if left > 0:
                self._users[key] = left
                continue
            self._users.pop(key, None)
            if self._providers.pop(key, None) is not None:
                self._spawn(provider.aclose())

    def _spawn(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(_quietly(closing))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _quietly(closing: Coroutine[Any, Any, None]) -> None:
    try:
        await closing
    except Exception:  # the edge: a pool that fails to close must not stop a reload
        log.exception("closing a retired provider failed")
