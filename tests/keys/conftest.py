"""Fixtures for the virtual key, project, admin and audit tests (helpers: keys_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from keys_support import ServedGateway, launch

from fake_upstream import FakeUpstream

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    """A fake upstream for these tests' gateways."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The fake upstream with an empty script and no records."""
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.fixture(scope="session")
def gw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """One gateway (SQLite, one worker) shared by the modules that only add rows."""
    gateway = launch(tmp_path_factory.mktemp("gw"), upstream_server)
    yield gateway
    gateway.stop()


@pytest.fixture
def api(gw: ServedGateway) -> Iterator[httpx.Client]:
    """The shared gateway's management API, as the master key."""
    with gw.admin() as client:
        yield client
