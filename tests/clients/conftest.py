"""Fixtures of the clients suite: real agent CLIs and SDK frameworks against the real
gateway (on a real port, SQLite in a temp dir) in front of the scripted fake upstream.

The suite has its own fake and gateway, shared by all its tests: runs go in parallel and
script the fake by nonce, which the other suites' per-test ``fake.reset()`` would undo.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from agent_install import Agents, InstallError, ensure_agents, install_dir, installed
from clients_support import clients_settings

from fake_upstream import FakeUpstream
from harness import GatewayServer
from services import require


@pytest.fixture(scope="session")
def clients_fake() -> Iterator[FakeUpstream]:
    """The fake upstream behind the clients suite's gateway."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clients_gateway(
    clients_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The real gateway: one OpenAI-type and one Anthropic-type provider, both the fake."""
    settings = clients_settings(clients_fake, tmp_path_factory.mktemp("clients-gateway"))
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def agents(request: pytest.FixtureRequest) -> Agents:
    """Claude Code, Codex and OpenCode at their pinned versions (installed on first use;
    without node/npm or a registry the agent tests skip, under CI=true they fail)."""
    cached = installed()
    if cached is not None:
        return cached
    say(request, f"installing the agent CLIs into {install_dir()} (first run: about 1.2 GB)")
    started = time.monotonic()
    try:
        found = ensure_agents()
    except (InstallError, OSError) as exc:
        require(f"the agent CLIs are not installed: {exc}")
    say(request, f"installed the agent CLIs in {time.monotonic() - started:.0f}s")
    return found


def say(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal even while output is captured (a long wait needs a reason)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[clients] {line}", flush=True)
