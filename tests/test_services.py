"""Self-test of ``services``: private servers really go away and come back on the same
port, and stopping them never disturbs the shared 127.0.0.1:5432 / :6379 instances."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services import PrivatePostgres, PrivateRedis, port_refuses, require, stopped

pytest_plugins = ["services"]

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/test"
SHARED_REDIS = "redis://127.0.0.1:6379/0"


def redis_client(url: str) -> redis.Redis:
    """A client that fails at once instead of retrying (we want to see the outage)."""
    return redis.Redis.from_url(url, socket_timeout=2, retry=Retry(NoBackoff(), 0))


async def pg_connect(url: str) -> asyncpg.Connection:
    """A fresh asyncpg connection with a short timeout."""
    return await asyncpg.connect(url, timeout=5)


# --------------------------------------------------------------------------- Redis


def test_redis_outage_and_recovery(private_redis: PrivateRedis) -> None:
    """stop(): clients are refused; start(): same port, answering again, but empty."""
    port = private_redis.port
    client = redis_client(private_redis.url)
    try:
        client.set("k", "v")
        assert client.get("k") == b"v"

        private_redis.stop()
        assert port_refuses(port)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        with pytest.raises(redis.ConnectionError):
            redis_client(private_redis.url).ping()

        private_redis.start()
        assert private_redis.port == port
        assert client.ping() is True  # the old client reconnects by itself
        assert client.get("k") is None  # no persistence: a restart loses everything
    finally:
        client.close()


def test_redis_crash_and_restart(private_redis: PrivateRedis) -> None:
    """A SIGKILL stop is an outage too; restart() brings it back on the same port."""
    port = private_redis.port
    private_redis.stop(graceful=False)
    assert port_refuses(port)
    assert not private_redis.running
    private_redis.restart()
    assert private_redis.port == port
    client = redis_client(private_redis.url)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_redis_fixture_restarts_and_empties(private_redis_server: PrivateRedis) -> None:
    """What ``private_redis`` does between tests: running again, and empty."""
    client = redis_client(private_redis_server.url)
    try:
        private_redis_server.ensure_running()
        client.set("left-over", "1")
        private_redis_server.ensure_running().flushall()
        assert client.dbsize() == 0
        private_redis_server.stop()
        private_redis_server.ensure_running()
        assert private_redis_server.running
        assert client.ping() is True
    finally:
        client.close()


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_outage_and_recovery(private_postgres: PrivatePostgres) -> None:
    """stop(): open connections break, new ones are refused; start(): same port, data kept."""
    port = private_postgres.port
    url = private_postgres.create_database()
    conn = await pg_connect(url)
    try:
        await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")

        private_postgres.stop()
        assert port_refuses(port)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
        with pytest.raises(ConnectionRefusedError):
            await pg_connect(url)
    finally:
        await conn.close()

    private_postgres.start()
    assert private_postgres.port == port
    conn = await pg_connect(url)
    try:
        assert await conn.fetchval("SELECT v FROM t") == 42
    finally:
        await conn.close()


async def test_postgres_crash_and_recovery(private_postgres: PrivatePostgres) -> None:
    """An immediate stop is a crash; the next start recovers committed rows."""
    url = private_postgres.create_database()
    conn = await pg_connect(url)
    try:
        await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
    finally:
        await conn.close()

    private_postgres.stop("immediate")
    assert port_refuses(private_postgres.port)
    private_postgres.start()

    conn = await pg_connect(url)
    try:
        assert await conn.fetchval("SELECT v FROM t") == 7
    finally:
        await conn.close()


async def test_postgres_databases(private_postgres: PrivatePostgres) -> None:
    """create_database() gives an isolated database; drop_database() removes it."""
    name = "services_selftest"
    url = private_postgres.create_database(name)
    assert url == f"postgresql://postgres@127.0.0.1:{private_postgres.port}/{name}"
    conn = await pg_connect(url)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
    finally:
        await conn.close()
    private_postgres.drop_database(name)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await pg_connect(url)
    with pytest.raises(ValueError):
        private_postgres.create_database('x"; DROP DATABASE postgres; --')


def test_postgres_fixture_restarts(private_postgres_server: PrivatePostgres) -> None:
    """What ``private_postgres`` does between tests: a stopped server is started again."""
    port = private_postgres_server.port
    private_postgres_server.stop()
    assert not private_postgres_server.running
    private_postgres_server.ensure_running()
    assert private_postgres_server.running
    assert private_postgres_server.port == port
    assert private_postgres_server.psql("SELECT 1") == "1"


def test_stopped_block(private_redis: PrivateRedis, private_postgres: PrivatePostgres) -> None:
    """``with stopped(server):`` is an outage for the block, then the server is back."""
    for server in (private_redis, private_postgres):
        with stopped(server):
            assert port_refuses(server.port)
            assert not server.running
        assert server.running


# --------------------------------------------------------------------------- skip rule


def test_require_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing service must not let CI pass by skipping."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no such binary"):
        require("no such binary")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no such binary"):
        require("no such binary")


# --------------------------------------------------------------------------- shared instances


@dataclass(frozen=True)
class Shared:
    """Identity of the shared servers: changes if either was restarted."""

    pg_started: object
    redis_run_id: object


def shared_identity() -> Shared:
    """The shared servers' start time / run id (None where unreachable)."""

    async def pg_started() -> object:
        conn = await pg_connect(SHARED_PG)
        try:
            return await conn.fetchval("SELECT pg_postmaster_start_time()")
        finally:
            await conn.close()

    try:
        started = asyncio.run(pg_started())
    except (OSError, TimeoutError, asyncpg.PostgresError):
        started = None
    client = redis_client(SHARED_REDIS)
    try:
        run_id = client.info("server")["run_id"]
    except redis.RedisError:
        run_id = None
    finally:
        client.close()
    return Shared(started, run_id)


@pytest.fixture(scope="module", autouse=True)
def shared_before() -> Shared:
    """The shared servers' identity before this module's outages."""
    return shared_identity()


def test_shared_instances_untouched(
    shared_before: Shared,
    private_redis: PrivateRedis,
    private_postgres: PrivatePostgres,
) -> None:
    """Outages of the private servers leave 5432 / 6379 up and never restarted."""
    if shared_before.pg_started is None or shared_before.redis_run_id is None:
        require(f"shared PostgreSQL/Redis not both reachable: {shared_before}")
    assert private_redis.port != 6379
    assert private_postgres.port != 5432

    private_redis.stop(graceful=False)
    private_postgres.stop("immediate")
    assert shared_identity() == shared_before
    private_redis.start()
    private_postgres.start()
    private_redis.restart()
    private_postgres.restart()
    assert shared_identity() == shared_before
