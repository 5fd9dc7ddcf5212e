"""Gateway hosts in network namespaces, HAProxy in front of them, and the calls the
multi-host tests make.

Every host is a real ``tollway serve`` inside its namespace (``netlab.Host``), on port
8080 of its own address, with a data dir of its own (its volume: the spend journal of a
host killed with SIGKILL is replayed when it starts again). Hosts reach the shared
PostgreSQL, the shared Redis and the fake upstream at their link's gateway address,
where ``netlab.Relay`` forwards to 127.0.0.1. HAProxy (Debian's package) listens on
127.0.0.1 in the root namespace, balances round-robin, checks ``/health/ready``, and names
the host that answered in ``x-tollway-host``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from netlab import Host, system_binary

from fake_upstream import COMPLETION_TOKENS
from served import TOLLWAY, clean_env, free_port

MASTER_KEY = "sk-tw-master-multihost-4e8a1c9b7d2f6053"
# Every host derives key hashes and the audit chain from one secret: a key minted on one
# host must verify on the other.
SECRET_KEY = "multihost-test-secret-9c4e1a7b3d5f2086e1c9a4b7"
GATEWAY_PORT = 8080
CLIENT_TIMEOUT = 20.0

GPT = "mh-gpt"  # OpenAI dialect, provider "oa"
CLAUDE = "mh-claude"  # Anthropic dialect, provider "an"
# Input free, one cent per output token: every call costs exactly what it reserved when
# it asks for max_tokens = COMPLETION_TOKENS (what the fake upstream generates).
PRICE = {"input_mtok": "0", "output_mtok": "10000"}
CALL_COST_CENTS = COMPLETION_TOKENS
MAX_TOKENS = COMPLETION_TOKENS
MESSAGES = [{"role": "user", "content": "Say hello."}]


def write_config(
    path: Path,
    host: Host,
    *,
    database: str,
    redis_prefix: str,
    upstream_port: int,
    **overrides: Any,
) -> Path:
    """A host's config: everything it reaches, it reaches at its link's gateway address."""
    reach = host.gateway
    upstream = f"http://{reach}:{upstream_port}"
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "secret_key": SECRET_KEY,
        "data_dir": str(path.parent / f"data-{host.label}"),
        "database_url": f"postgresql://postgres@{reach}:5432/{database}",
        "redis_url": f"redis://{reach}:6379/0",
        "redis_prefix": redis_prefix,
        "host": host.address,
        "port": GATEWAY_PORT,
        "log": {"level": "warning", "access": False},
        "timeouts": {"connect": 2.0, "read": 15.0, "stream_idle": 15.0},
        "retry": {"attempts": 0},
        "circuit": {"failures": 1000, "cooldown": 1.0},
        "providers": {
            "oa": {"type": "openai", "base_url": upstream + "/v1", "api_key": "sk-up-oa-0001"},
            "an": {"type": "anthropic", "base_url": upstream, "api_key": "sk-up-an-0001"},
        },
        "models": [
            {"name": GPT, "provider": "oa", "model": "mh-gpt-1", "price": PRICE},
            {"name": CLAUDE, "provider": "an", "model": "mh-claude-1", "price": PRICE},
        ],
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class NetnsGateway:
    """``tollway serve`` inside ``host``'s namespace, in a process group of its own."""

    host: Host
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where the root namespace reaches it."""
        return f"http://{self.host.address}:{GATEWAY_PORT}"

    @property
    def log_path(self) -> Path:
        """Its output (every start appends)."""
        return self.config.with_suffix(".log")

    def start(self, timeout: float = 120.0) -> NetnsGateway:
        """Launch in the namespace and wait until ``/health/ready`` answers 200."""
        command = self.host.command(TOLLWAY, "serve", "--config", str(self.config))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env=clean_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise RuntimeError(f"host {self.host.label} exited early:\n{self.log()}")
                try:
                    if client.get(self.url + "/health/ready").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"host {self.host.label} did not get ready:\n{self.log()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group: no drain, no flush, no goodbye."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log(self) -> str:
        """What it printed so far (the tail)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


HAPROXY_CONFIG = """\
global
    log stderr format raw local0 warning

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A request that never reached a host (it refuses connections: killed, restarting)
    # goes to another one; one the host had started is not replayed (it is not idempotent).
    retries 2
    option redispatch 1

frontend gateway
    bind 127.0.0.1:{port}
    default_backend hosts

backend hosts
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health/ready
    http-check expect status 200
    timeout check 5s
    default-server inter 300ms fall 2 rise 1
    http-response set-header x-tollway-host %s
{servers}
"""


@dataclass
class Haproxy:
    """HAProxy in the root namespace in front of ``gateways``."""

    gateways: list[NetnsGateway]
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _config: Path = field(init=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Haproxy:
        """Write the config, start HAProxy in the foreground, wait until every host is up."""
        self.port = free_port()
        servers = "\n".join(
            f"    server {g.host.label} {g.host.address}:{GATEWAY_PORT} check"
            for g in self.gateways
        )
        self._config = self.directory / "haproxy.cfg"
        self._config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        binary = system_binary("haproxy") or "haproxy"
        check = subprocess.run(
            [binary, "-c", "-f", str(self._config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the config:\n{check.stdout}{check.stderr}")
        log = (self.directory / "haproxy.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(self._config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_serving({g.host.label for g in self.gateways})
        return self

    def wait_serving(self, labels: set[str], timeout: float = 30.0) -> None:
        """Wait until requests through HAProxy have been answered by each of ``labels``."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while not labels <= seen:
                try:
                    response = client.get("/health/ready")
                    if response.status_code == 200:
                        seen.add(response.headers.get("x-tollway-host", ""))
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy reached only {sorted(seen)} of {sorted(labels)}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop HAProxy (SIGTERM: an immediate stop)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@dataclass
class Cluster:
    """The hosts by label, the balancer in front, and where their shared state lives."""

    hosts: dict[str, NetnsGateway]
    lb: Haproxy
    database_url: str  # as the root namespace reaches it
    redis_url: str
    redis_prefix: str


# ----------------------------------------------------------------- the management API


def admin(url: str) -> httpx.Client:
    """The management API at ``url`` as the master key."""
    return httpx.Client(
        base_url=url + "/api/v1",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=CLIENT_TIMEOUT,
    )


def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a 201 (or a failed assertion naming what came back)."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def cents(count: int) -> str:
    """``count`` cents in USD, as the API takes money."""
    return f"{count / 100:.2f}"


# ----------------------------------------------------------------- proxy calls


def call_body(model: str, *, stream: bool = False) -> dict[str, Any]:
    """One call whose worst case is exactly its cost."""
    return {"model": model, "messages": MESSAGES, "max_tokens": MAX_TOKENS, "stream": stream}


def request_for(index: int, secret: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Call ``index`` of a mix: even ones OpenAI chat, odd ones Anthropic messages."""
    if index % 2:
        return "/v1/messages", call_body(CLAUDE), {"x-api-key": secret}
    return "/v1/chat/completions", call_body(GPT), {"authorization": f"Bearer {secret}"}


def error_code(response: httpx.Response) -> str | None:
    """The error's code (OpenAI dialect) or type (Anthropic dialect), None on success."""
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"not a gateway error: {response.text[:200]!r}"
    return str(error.get("code") or error.get("type"))


def hosts_of(responses: Iterable[httpx.Response]) -> set[str]:
    """The hosts HAProxy says answered."""
    return {r.headers["x-tollway-host"] for r in responses if "x-tollway-host" in r.headers}
