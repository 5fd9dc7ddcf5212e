"""Fixtures for the routing and resilience tests.

Three fake upstreams serve the whole directory (each test starts from empty scripts and
records); gateways are started per test (``start``), because deployment health,
latency and circuit breakers live in the gateway process and must start fresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from routing_support import (
    AccessLog,
    Gateway,
    StartGateway,
    Upstreams,
    capture_access_log,
    launch,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    """The three fakes, shared by the session (use ``ups`` in tests)."""
    ups = Upstreams(FakeUpstream().start(), FakeUpstream().start(), FakeUpstream().start())
    yield ups
    for fake in ups:
        fake.stop()


@pytest.fixture
def ups(upstreams: Upstreams) -> Iterator[Upstreams]:
    """The fakes with empty scripts and no records."""
    upstreams.reset()
    yield upstreams
    upstreams.reset()


@pytest.fixture
def start(ups: Upstreams, tmp_path: Path) -> Iterator[StartGateway]:
    """Start a gateway for this test: ``start(models, retry=..., circuit=..., timeouts=...)``."""
    servers: list[GatewayServer] = []

    def starter(models: list[dict[str, Any]], **options: Any) -> Gateway:
        server = launch(ups, tmp_path / f"gateway-{len(servers)}", models, **options)
        servers.append(server)
        return Gateway(server)

    yield starter
    ups.reset()  # wake stalled handlers before the gateways shut down
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def start_shared(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartGateway]:
    """Like ``start``, for a gateway a whole module shares (tests that leave no state
    that matters behind: breakers that never trip)."""
    servers: list[GatewayServer] = []

    def starter(models: list[dict[str, Any]], **options: Any) -> Gateway:
        server = launch(upstreams, tmp_path_factory.mktemp("shared-gateway"), models, **options)
        servers.append(server)
        return Gateway(server)

    yield starter
    upstreams.reset()
    for server in servers:
        server.stop()


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    """The gateway's access-log lines emitted during this test."""
    collector, logger, previous = capture_access_log()
    yield collector
    logger.removeHandler(collector)
    logger.setLevel(previous)
