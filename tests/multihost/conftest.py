"""Two gateway hosts in network namespaces on the shared PostgreSQL and Redis, HAProxy in
front (see ``multihost_support``). One cluster serves the whole module: a database and a
Redis key prefix of its own, removed afterwards.

Needs root (namespaces), iproute2 and HAProxy (``.ci/run`` installs it); without them the
tests skip with the reason, and fail under ``CI=true``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import netlab
import pytest
import redis
from multihost_support import Cluster, Haproxy, NetnsGateway, write_config

from fake_upstream import FakeUpstream
from services import require, shared_postgres_database

LABELS = ("a", "b")
SHARED_PORTS = (5432, 6379)  # PostgreSQL and Redis on 127.0.0.1


@pytest.fixture(scope="module")
def network() -> Iterator[netlab.Network]:
    """Namespaces ``a`` and ``b`` with their veth links."""
    reason = netlab.unavailable_reason()
    if reason is None and netlab.system_binary("haproxy") is None:
        reason = "haproxy is not installed (apt-get install haproxy)"
    if reason is not None:
        require(f"multi-host tests cannot run: {reason}")
    network = netlab.Network(LABELS)
    yield network
    network.close()


@pytest.fixture(scope="module")
def relay(network: netlab.Network, fake_server: FakeUpstream) -> Iterator[netlab.Relay]:
    """PostgreSQL, Redis and the fake upstream, reachable from every host."""
    relay = netlab.Relay()
    try:
        for host in network.hosts.values():
            for port in (*SHARED_PORTS, fake_server.port):
                relay.listen(host.gateway, port, port)
    except BaseException:
        relay.close()
        raise
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def cluster(
    network: netlab.Network,
    relay: netlab.Relay,
    fake_server: FakeUpstream,
    shared_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """Both hosts serving (``a`` first: it runs the migrations) behind HAProxy."""
    prefix = f"tollway-multihost-{secrets.token_hex(4)}:"
    tmp = tmp_path_factory.mktemp("multihost")
    with shared_postgres_database() as database_url:
        database = database_url.rsplit("/", 1)[1]
        hosts = {
            label: NetnsGateway(
                host,
                write_config(
                    tmp / f"host-{label}.yaml",
                    host,
                    database=database,
                    redis_prefix=prefix,
                    upstream_port=fake_server.port,
                ),
            )
            for label, host in network.hosts.items()
        }
        lb = Haproxy(list(hosts.values()), tmp)
        try:
            for gateway in hosts.values():
                gateway.start()
            lb.start()
            yield Cluster(hosts, lb, database_url, shared_redis_url, prefix)
        finally:
            lb.stop()
            for gateway in hosts.values():
                gateway.stop()
            _forget(shared_redis_url, prefix)


def _forget(url: str, prefix: str) -> None:
    """Delete this run's Redis keys."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def fresh(cluster: Cluster, fake: FakeUpstream) -> Cluster:
    """The cluster with both hosts up (a test may have killed one) and an empty fake."""
    for gateway in cluster.hosts.values():
        if gateway.process is None or gateway.process.poll() is not None:
            gateway.start()
    cluster.lb.wait_serving(set(cluster.hosts))
    return cluster
