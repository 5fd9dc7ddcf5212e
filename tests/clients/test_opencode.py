"""OpenCode (``opencode run``) through the gateway, on a model of each upstream type.

OpenCode is set up the way a gateway is usually given to it: one OpenAI-compatible
provider (``@ai-sdk/openai-compatible``, chat completions, streamed with usage) listing
every model. A model on the Anthropic-type upstream is then translated both ways. Each
run also makes a title call without tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from agent_install import PINS, Agents
from agent_runs import AgentRuns, base_env, check_agent_run, selected_cases
from clients_support import (
    MODELS,
    TURNS,
    UPSTREAMS,
    EgressTrap,
    Script,
    VirtualKey,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer

PLUGIN = "@opencode-ai/plugin"


def opencode_config(gateway_url: str, model: str) -> dict[str, object]:
    """``opencode.json`` as ``tollway keys create --for opencode`` writes it, plus bash
    allowed and nothing shared or updated."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": f"tollway/{model}",
        "small_model": f"tollway/{model}",  # its title calls
        "autoupdate": False,
        "share": "disabled",
        "permission": {"bash": "allow"},
        "provider": {
            "tollway": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Tollway",
                "options": {"baseURL": gateway_url + "/v1", "apiKey": "{env:TOLLWAY_API_KEY}"},
                "models": {name: {"name": name, "tool_call": True} for name in MODELS.values()},
            }
        },
    }


def seed_config_dir(config_dir: Path) -> None:
    """Mark the plugin SDK as installed in the config dir.

    At startup OpenCode runs ``npm install @opencode-ai/plugin`` in each config dir (for
    custom tools written against it) unless its package.json and lock already list it;
    this suite has no custom tools and must not download at run time."""
    version = PINS["opencode-ai"][0]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "node_modules").mkdir(exist_ok=True)
    dependencies = {PLUGIN: version}
    (config_dir / "package.json").write_text(json.dumps({"dependencies": dependencies}))
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": dependencies}}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock))


def opencode(
    agents: Agents,
    gateway_url: str,
    model: str,
    upstream: str,
    script: Script,
    key: VirtualKey,
    home: Path,
    trap: EgressTrap,
) -> tuple[list[str], dict[str, str]]:
    """``opencode run`` with its own config, data and cache dirs."""
    env = base_env(home, trap) | {
        "TOLLWAY_API_KEY": key.secret,
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",  # the models.dev catalogue
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",  # do not read ~/.claude
    }
    config_dir = Path(env["XDG_CONFIG_HOME"]) / "opencode"
    seed_config_dir(config_dir)
    (config_dir / "opencode.json").write_text(json.dumps(opencode_config(gateway_url, model)))
    argv = [str(agents.opencode), "run", "--pure", "--model", f"tollway/{model}", script.prompt]
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
        "opencode",
        partial(opencode, agents, clients_gateway.url),
        clients_gateway,
        clients_fake,
        tmp_path_factory.mktemp("opencode"),
    )
    started.start(selected_cases(request))
    yield started
    started.close()


@pytest.mark.parametrize("turn", TURNS)
@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_opencode(
    runs: AgentRuns,
    upstream: str,
    turn: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
) -> None:
    """A text turn, and a bash round trip that OpenCode really runs."""
    check_agent_run(runs.result(upstream, turn), clients_gateway, clients_fake)
