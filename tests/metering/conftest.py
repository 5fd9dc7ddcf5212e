"""Fixtures for the metering, budget and rate-limit tests.

One fake upstream (``MeteredUpstream``: the shared fake plus scripted usage numbers) and
one in-process gateway (``harness.GatewayServer``: the real app under uvicorn on a real
port, SQLite in a temporary data dir) serve the whole directory; every test mints its
own keys, so its spend, budgets and limits start from zero.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from metering_support import (
    CLIENT_TIMEOUT,
    MASTER_KEY,
    MODELS,
    MeteredUpstream,
    admin_client,
    providers,
)

from harness import GatewayServer, gateway_settings
from services import require


@pytest.fixture(scope="session")
def metered_server() -> Iterator[MeteredUpstream]:
    """The fake upstream for this directory."""
    server = MeteredUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def up(metered_server: MeteredUpstream) -> Iterator[MeteredUpstream]:
    """The fake upstream with an empty script and no records."""
    metered_server.reset()
    yield metered_server
    metered_server.reset()


@pytest.fixture(scope="session")
def mgw(
    metered_server: MeteredUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The in-process gateway (SQLite, in-memory ledger and limiter)."""
    settings = gateway_settings(
        metered_server,
        tmp_path_factory.mktemp("metering-gw"),
        master_key=MASTER_KEY,
        providers=providers(metered_server),
        models=MODELS,
        timeouts={"connect": 2.0, "read": 10.0, "stream_idle": 10.0},
        retry={"attempts": 0},
        circuit={"failures": 1000, "cooldown": 1.0},
        log={"level": "warning", "access": False},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def db_path(mgw: GatewayServer) -> Path:
    """The in-process gateway's SQLite file."""
    return Path(mgw.settings.data_dir) / "tollway.db"


@pytest.fixture
def api(mgw: GatewayServer) -> Iterator[httpx.Client]:
    """The management API as the master key."""
    with admin_client(mgw.url) as client:
        yield client


@pytest.fixture
def http(mgw: GatewayServer) -> Iterator[httpx.Client]:
    """A plain HTTP client for the gateway's proxy routes."""
    with httpx.Client(base_url=mgw.url, timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture
async def ahttp(mgw: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    """An async HTTP client with room for many concurrent connections."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=mgw.url, timeout=CLIENT_TIMEOUT, limits=limits) as client:
        yield client


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix for this run; its keys are deleted at the end."""
    prefix = f"tollway-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    try:
        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except redis.RedisError:
        pass


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis (skips when it is not running)."""
    url = "redis://127.0.0.1:6379/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        require(f"no Redis on 127.0.0.1:6379 ({exc})")
    return url
