"""Pydantic AI agents on the gateway: its OpenAI chat, OpenAI Responses and Anthropic
models, each with a shell tool the agent really runs, on a model of either upstream type.
"""

from __future__ import annotations

import pytest
from clients_support import TURNS, UPSTREAMS, SdkTurn, run_shell, sdk_turn
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from fake_upstream import FakeUpstream
from harness import GatewayServer

APIS = ("chat", "responses", "anthropic")


def agent_model(api: str, turn: SdkTurn) -> Model:
    """Pydantic AI's model for ``api``, with the gateway as its endpoint."""
    if api == "anthropic":
        provider = AnthropicProvider(base_url=turn.gateway_url, api_key=turn.key.secret)
        return AnthropicModel(turn.model, provider=provider)
    openai = OpenAIProvider(base_url=turn.gateway_url + "/v1", api_key=turn.key.secret)
    if api == "responses":
        return OpenAIResponsesModel(turn.model, provider=openai)
    return OpenAIChatModel(turn.model, provider=openai)


@pytest.mark.parametrize("turn", TURNS)
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("api", APIS)
def test_agent(
    api: str,
    upstream: str,
    turn: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text turn, and a turn where the agent calls ``run_shell`` and answers after it."""
    with sdk_turn(
        f"pydantic-ai-{api}", upstream, turn, clients_gateway, clients_fake, monkeypatch
    ) as current:
        agent = Agent(agent_model(api, current), tools=[run_shell])
        result = agent.run_sync(current.script.prompt)
        current.output = result.output
