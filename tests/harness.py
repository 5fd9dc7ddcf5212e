"""Run the real gateway under uvicorn on a real port, with settings built for tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from fake_upstream import FakeUpstream, closed_port
from tollway.app import create_app
from tollway.settings import Settings

MASTER_KEY = "sk-tw-master-test-7f3a9c1e5b2d4086"
OPENAI_UPSTREAM_KEY = "sk-upstream-oa-SECRET-4d9f1a7c2e8b"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-SECRET-6b1e9d3a7f2c"
PROVIDER_KEYS = (OPENAI_UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY)

# Client-facing model names and the upstream ids they map to.
GPT = "gpt-test"
GPT_UPSTREAM = "gpt-upstream-1"
EMBED = "embed-test"
EMBED_UPSTREAM = "text-embedding-upstream-1"
CLAUDE = "claude-test"
CLAUDE_UPSTREAM = "claude-upstream-1"
GPT_REFUSED = "gpt-refused"
CLAUDE_REFUSED = "claude-refused"


def gateway_settings(fake: FakeUpstream, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a gateway in front of ``fake`` (plus providers on a closed port)."""
    dead = f"http://127.0.0.1:{closed_port()}"
    values: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": data_dir,
        "timeouts": {"connect": 1.0, "read": 2.0, "stream_idle": 1.0},
        # Failure-mapping tests see each scripted failure; routing tests turn these on.
        "retry": {"attempts": 0},
        "circuit": {"failures": 1000, "cooldown": 1.0},
        "providers": {
            "oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": OPENAI_UPSTREAM_KEY},
            "an": {"type": "anthropic", "base_url": fake.url, "api_key": ANTHROPIC_UPSTREAM_KEY},
            "oa-refused": {"type": "openai", "base_url": dead + "/v1", "api_key": "sk-x-000000"},
            "an-refused": {"type": "anthropic", "base_url": dead, "api_key": "sk-x-000000"},
        },
        "models": [
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": EMBED, "provider": "oa", "model": EMBED_UPSTREAM},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
            {"name": GPT_REFUSED, "provider": "oa-refused"},
            {"name": CLAUDE_REFUSED, "provider": "an-refused"},
            {"name": "claude-*", "provider": "an"},
        ],
    }
    values.update(overrides)
    return Settings(**values)


class GatewayServer:
    """``create_app(settings)`` served by uvicorn (httptools, lifespan on) in a thread."""

    def __init__(self, settings: Settings, loop: str = "uvloop") -> None:
        self.settings = settings
        self._loop = loop
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        """Start serving and wait until uvicorn reports it has started."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.settings),
            loop=self._loop,
            http="httptools",
            ws="websockets-sansio",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 60  # generous for a loaded host; returns when up
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (runs the lifespan shutdown) and wait for it."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
            self._server = None


@contextlib.contextmanager
def running_gateway(settings: Settings) -> Iterator[GatewayServer]:
    """A started gateway, stopped on exit."""
    server = GatewayServer(settings).start()
    try:
        yield server
    finally:
        server.stop()
