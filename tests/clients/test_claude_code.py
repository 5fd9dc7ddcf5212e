"""Claude Code (``claude -p``) through the gateway, on a model of each upstream type.

Claude Code speaks the Anthropic Messages API (streamed, ``?beta=true``, adaptive
thinking, its whole tool set, ``system`` turns inside ``messages``). Served by the
Anthropic-type upstream it passes through; served by the OpenAI-type one, every request,
stream and tool call is translated.
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


def claude_code(
    agents: Agents,
    gateway_url: str,
    model: str,
    upstream: str,
    script: Script,
    key: VirtualKey,
    home: Path,
    trap: EgressTrap,
) -> tuple[list[str], dict[str, str]]:
    """``claude -p`` with the gateway as its Anthropic endpoint and nothing phoning home."""
    env = base_env(home, trap) | {
        "ANTHROPIC_BASE_URL": gateway_url,
        # As ``tollway keys create --for claude-code`` sets it up: a bearer token, which
        # Claude Code uses without a login prompt.
        "ANTHROPIC_AUTH_TOKEN": key.secret,
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        # Every model Claude Code may pick for side work is the one the key allows.
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        # No telemetry, error reports, feature flags or update checks.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_UPDATES": "1",
        "DISABLE_GROWTHBOOK": "1",
        # A gateway error fails the run now instead of after retries with backoff.
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "60000",
    }
    argv = [str(agents.claude), "-p", "--model", model, "--allowedTools", "Bash", "--"]
    return [*argv, script.prompt], env


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
        "claude-code",
        partial(claude_code, agents, clients_gateway.url),
        clients_gateway,
        clients_fake,
        tmp_path_factory.mktemp("claude-code"),
    )
    started.start(selected_cases(request))
    yield started
    started.close()


@pytest.mark.parametrize("turn", TURNS)
@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_claude_code(
    runs: AgentRuns,
    upstream: str,
    turn: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
) -> None:
    """A text turn, and a Bash round trip that Claude Code really runs."""
    check_agent_run(runs.result(upstream, turn), clients_gateway, clients_fake)
