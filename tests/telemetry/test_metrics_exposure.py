"""Where ``/metrics`` answers and to whom: the gateway's port behind a key (default),
``public: true``, ``port: N`` (every worker listens; any answers for all), ``enabled:
false``; and the config checks."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from metrics_support import (
    MASTER_KEY,
    bearer,
    chat,
    config,
    eventually,
    launch,
    management_error,
    scrape,
    total,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer
from served import free_port
from tollway.settings import ConfigError, Settings, load_settings


@pytest.fixture
def in_process(fake: FakeUpstream, tmp_path: Path) -> Iterator[Any]:
    """Start an in-process gateway with ``metrics`` settings; stopped after the test."""
    started: list[GatewayServer] = []

    def start(**metrics: Any) -> GatewayServer:
        values = config(tmp_path / f"data{len(started)}", fake)
        values["metrics"] = metrics
        server = GatewayServer(Settings(**values)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_the_default_is_the_gateway_port_behind_a_key(in_process: Any) -> None:
    gateway = in_process()
    with httpx.Client(timeout=10.0) as client:
        management_error(client.get(gateway.url + "/metrics"), 401)
    assert "tollway_requests_in_flight" in {
        name for name, _ in scrape(gateway.url, bearer(MASTER_KEY))
    }


def test_public_opens_it(in_process: Any) -> None:
    gateway = in_process(public=True)
    assert chat(gateway.url, MASTER_KEY).status_code == 200
    samples = scrape(gateway.url)
    assert total(samples, "tollway_requests_total") == 1


def test_disabled_means_no_route_and_no_observer(in_process: Any) -> None:
    gateway = in_process(enabled=False)
    with httpx.Client(timeout=10.0) as client:
        management_error(client.get(gateway.url + "/metrics", headers=bearer(MASTER_KEY)), 404)
    assert chat(gateway.url, MASTER_KEY).status_code == 200


def test_its_own_port_keeps_the_key_unless_public(in_process: Any) -> None:
    port = free_port()
    gateway = in_process(port=port, host="127.0.0.1")
    metrics_url = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=10.0) as client:
        management_error(client.get(gateway.url + "/metrics", headers=bearer(MASTER_KEY)), 404)
        management_error(client.get(metrics_url + "/metrics"), 401)
        management_error(client.get(metrics_url + "/elsewhere", headers=bearer(MASTER_KEY)), 404)
    assert chat(gateway.url, MASTER_KEY).status_code == 200
    assert total(scrape(metrics_url, bearer(MASTER_KEY)), "tollway_requests_total") == 1


def test_its_own_port_under_two_workers_shows_every_worker(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    gateway = launch(tmp_path, fake, workers=2, metrics={"public": True, "port": port})
    try:
        metrics_url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10.0) as client:
            management_error(client.get(gateway.url + "/metrics"), 404)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: chat(gateway.url, MASTER_KEY), range(8)))
        assert all(answer.status_code == 200 for answer in answers)
        # Every scrape, whichever worker takes it, has all eight calls.
        assert eventually(lambda: total(scrape(metrics_url), "tollway_requests_total") == 8)
        for _ in range(6):
            assert total(scrape(metrics_url), "tollway_requests_total") == 8
    finally:
        gateway.stop()
    # Stopped: the run's directory went with it.
    assert not list((gateway.data_dir / "metrics").glob("run-*"))


def test_a_metrics_port_equal_to_the_gateway_port_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"port": 9100, "metrics": {"port": 9100}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_settings(path)
    path.write_text(yaml.safe_dump({"metrics": {"max_projects": -1}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.max_projects"):
        load_settings(path)
