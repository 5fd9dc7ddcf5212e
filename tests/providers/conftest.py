"""Fixtures for the provider tests: a fake upstream per test and providers closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from provider_support import FakeUpstream, build

from tollway.providers.base import Provider


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """A scripted fake upstream on 127.0.0.1, on the test's event loop."""
    server = await FakeUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def provider_factory() -> AsyncIterator[Callable[..., Provider]]:
    """``build(kind, **config)``, with every provider's connections closed afterwards."""
    built: list[Provider] = []

    def make(kind: str, **config: Any) -> Provider:
        provider = build(kind, **config)
        built.append(provider)
        return provider

    yield make
    for provider in built:
        await provider.aclose()
