"""Fixtures for the request log tests: a database of each kind, and the real gateway on
a real port in front of the fake upstream, on SQLite and on Postgres.

Postgres is the shared server (127.0.0.1:5432), a database of the module's own; without
it the Postgres half skips saying why, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requestlog_support import admin, settings_for

from fake_upstream import FakeUpstream
from harness import GatewayServer
from services import shared_postgres_database


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """An empty database of ``kind`` (sqlite or postgres); its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'tollway.db'}"
    else:
        with shared_postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for one test."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rlgw(
    request: pytest.FixtureRequest,
    fake_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    """The gateway for this module, on SQLite and on Postgres."""
    folder = tmp_path_factory.mktemp(f"requestlog-{request.param}")
    with database(request.param, folder) as url:
        settings = settings_for(
            fake_server, folder / "data", None if request.param == "sqlite" else url
        )
        server = GatewayServer(settings).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def api(rlgw: GatewayServer) -> Iterator[httpx.Client]:
    """The module gateway's management API as the master key."""
    with admin(rlgw.url) as client:
        yield client
