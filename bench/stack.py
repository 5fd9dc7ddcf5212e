"""The processes under test, started together: the fake upstream (LOAD_CPU), the floor
proxy and one Tollway process (both PROXY_CPU, measured one at a time).

Tollway is configured from a file in a temp dir: one OpenAI-type provider and one
Anthropic-type provider, both the fake upstream, with prices, on SQLite.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import (
    HOST,
    LOAD_CPU,
    PROXY_CPU,
    BenchError,
    Service,
    clean_env,
    free_port,
    log,
    taskset,
)

BENCH_DIR = Path(__file__).resolve().parent
MASTER_KEY = "sk-bench-master-key-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-fake"
MODEL = "bench-model"  # served by the fake's OpenAI API
TRANSLATED_MODEL = "bench-claude"  # served by the fake's Anthropic API, called in OpenAI's


@dataclass
class Stack:
    """The running processes and the workdir holding their config and logs."""

    workdir: Path
    upstream: Service
    floor: Service
    gateway: Service

    def services(self) -> list[Service]:
        return [self.upstream, self.floor, self.gateway]

    def check_alive(self) -> None:
        for service in self.services():
            service.check_alive()

    def mint_key(self, body: dict[str, Any]) -> str:
        """A virtual key from the gateway's management API."""
        conn = http.client.HTTPConnection(HOST, self.gateway.port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
            conn.request("POST", "/api/v1/keys", json.dumps(body), headers)
            response = conn.getresponse()
            data = json.loads(response.read())
            if response.status != 201:
                raise BenchError(f"could not mint a bench key: {response.status} {data}")
            return str(data["key"])
        finally:
            conn.close()

    def upstream_requests(self) -> int:
        """Requests the fake upstream has answered so far."""
        conn = http.client.HTTPConnection(HOST, self.upstream.port, timeout=5)
        try:
            conn.request("GET", "/__stats")
            return int(json.loads(conn.getresponse().read())["requests"])
        finally:
            conn.close()


def gateway_config(workdir: Path, upstream_port: int) -> Path:
    data_dir = workdir / "data"
    data_dir.mkdir()
    path = workdir / "tollway.yaml"
    path.write_text(
        f"master_key: {MASTER_KEY}\n"
        f"data_dir: {data_dir}\n"
        "providers:\n"
        f'  fake: {{type: openai, base_url: "http://{HOST}:{upstream_port}/v1", '
        f'api_key: "{UPSTREAM_KEY}"}}\n'
        f'  fake-anthropic: {{type: anthropic, base_url: "http://{HOST}:{upstream_port}", '
        f'api_key: "{UPSTREAM_KEY}"}}\n'
        "models:\n"
        f"  - name: {MODEL}\n"
        "    provider: fake\n"
        "    price: {input_mtok: 0.15, output_mtok: 0.6}\n"
        f"  - name: {TRANSLATED_MODEL}\n"
        "    provider: fake-anthropic\n"
        "    price: {input_mtok: 3, output_mtok: 15}\n"
    )
    return path


@contextlib.contextmanager
def running_stack(tollway: Path, *, keep_workdir: bool) -> Iterator[Stack]:
    """Start the three processes, wait until each answers, stop them all at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    env = clean_env()
    services: list[Service] = []
    ok = False
    try:
        up_port = free_port()
        upstream = Service(
            "fake upstream",
            [
                *taskset(LOAD_CPU),
                *(sys.executable, str(BENCH_DIR / "fake_upstream.py")),
                *("--host", HOST, "--port", str(up_port), "--api-key", UPSTREAM_KEY),
            ],
            up_port,
            "/health",
            workdir / "upstream.log",
        )
        services.append(upstream)
        upstream.start(cwd=workdir, env=env)
        upstream.wait_ready(15)

        floor_port = free_port()
        floor = Service(
            "floor proxy",
            [
                *taskset(PROXY_CPU),
                *(sys.executable, str(BENCH_DIR / "floor.py")),
                *("--host", HOST, "--port", str(floor_port)),
                *("--upstream", f"http://{HOST}:{up_port}"),
            ],
            floor_port,
            "/health",  # forwarded to the upstream like everything else
            workdir / "floor.log",
        )
        services.append(floor)
        floor.start(cwd=workdir, env=env)

        gw_port = free_port()
        config = gateway_config(workdir, up_port)
        gateway = Service(
            "tollway",
            [
                *taskset(PROXY_CPU),
                *(str(tollway), "serve", "--config", str(config)),
                *("--host", HOST, "--port", str(gw_port), "--workers", "1"),
            ],
            gw_port,
            "/health/live",
            workdir / "gateway.log",
        )
        services.append(gateway)
        gateway.start(cwd=workdir, env=env)
        floor.wait_ready(30)
        log(f"tollway ready after {gateway.wait_ready(60):.2f}s")
        time.sleep(0.2)
        yield Stack(workdir, upstream, floor, gateway)
        ok = True
    finally:
        for service in reversed(services):
            service.stop()
        if ok and not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs and config kept in {workdir}")
