"""Codex (``codex exec``) through the gateway, on a model of each upstream type.

Codex speaks only the Responses API (streamed, ``store: false``, ``developer`` input
items, an ``exec_command`` function tool beside ``namespace`` and ``web_search`` tools).
Served by the OpenAI-type upstream it passes through; served by the Anthropic-type one,
the gateway must translate Responses to Messages and back.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from agent_install import Agents
from agent_runs import AgentRuns, base_env, check_agent_run, selected_cases
from clients_support import (
    TURNS,
    UPSTREAMS,
    EgressTrap,
    Script,
    VirtualKey,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer

# Read with --strict-config, so a key this Codex does not know fails the run.
CONFIG = """\
model = "{model}"
model_provider = "tollway"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
# Plugin and app discovery fetch from GitHub and ChatGPT at startup.
plugins = false
apps = false

[model_providers.tollway]
name = "Tollway"
base_url = "{base_url}"
env_key = "TOLLWAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


def codex(
    agents: Agents,
    gateway_url: str,
    model: str,
    upstream: str,
    script: Script,
    key: VirtualKey,
    home: Path,
    trap: EgressTrap,
) -> tuple[list[str], dict[str, str]]:
    """``codex exec`` with the gateway as a custom Responses provider."""
    codex_home = home / ".codex"
    codex_home.mkdir()
    config = CONFIG.format(model=model, base_url=gateway_url + "/v1")
    (codex_home / "config.toml").write_text(config)
    env = base_env(home, trap) | {"CODEX_HOME": str(codex_home), "TOLLWAY_API_KEY": key.secret}
    argv = [
        str(agents.codex),
        "exec",
        "--strict-config",
        "--skip-git-repo-check",
        "--ephemeral",
        "--color",
        "never",
        # The shell tool runs unsandboxed: the gateway is under test, not Codex's sandbox.
        "--sandbox",
        "danger-full-access",
        "--cd",
        str(home / "work"),
        "--",
        script.prompt,
    ]
    return argv, env


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest,
    agents: Agents,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentRuns]:
    """Every selected case of this module, started at once."""
    started = AgentRuns(
        "codex",
        partial(codex, agents, clients_gateway.url),
        clients_gateway,
        clients_fake,
        tmp_path_factory.mktemp("codex"),
    )
    started.start(selected_cases(request))
    yield started
    started.close()


@pytest.mark.parametrize("turn", TURNS)
@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_codex(
    runs: AgentRuns,
    upstream: str,
    turn: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
) -> None:
    """A text turn, and an ``exec_command`` round trip that Codex really runs."""
    check_agent_run(runs.result(upstream, turn), clients_gateway, clients_fake)
