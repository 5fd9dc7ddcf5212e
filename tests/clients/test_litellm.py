"""The LiteLLM SDK as a client of the gateway: ``completion`` (plain, streamed, and a
tool round trip the test really runs) with ``api_base`` on the gateway, through LiteLLM's
OpenAI and Anthropic providers, on a model of either upstream type."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from clients_support import UPSTREAMS, EgressTrap, SdkTurn, run_shell, sdk_turn

from fake_upstream import FakeUpstream
from harness import GatewayServer

# LiteLLM's own types trip a pydantic warning on first use; not the gateway's concern.
pytestmark = pytest.mark.filterwarnings("ignore:Item .* `ReadOnly` qualifier:UserWarning")
TIMEOUT = 30.0
SHELL_TOOL = {
    "type": "function",
    "function": {
        "name": "run_shell",
        "description": "Run a shell command and return what it printed.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    """LiteLLM, imported with its bundled price map (it fetches one from GitHub at import
    otherwise) and with outbound traffic trapped meanwhile."""
    trap = EgressTrap()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in trap.env().items():
            patch.setenv(name, value)
        patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        patch.setenv("LITELLM_TELEMETRY", "False")
        module: Any = importlib.import_module("litellm")
        module.suppress_debug_info = True
        module.telemetry = False
        trap.close()
        assert trap.seen == [], f"importing litellm reached out: {trap.seen}"
        yield module


def call(litellm: ModuleType, dialect: str, turn: SdkTurn, **extra: Any) -> Any:
    """``litellm.completion`` through LiteLLM's ``dialect`` provider at the gateway."""
    base = turn.gateway_url + ("/v1" if dialect == "openai" else "")
    return litellm.completion(
        model=f"{dialect}/{turn.model}",
        api_base=base,
        api_key=turn.key.secret,
        timeout=TIMEOUT,
        num_retries=0,
        max_tokens=1024,
        **extra,
    )


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_completion(
    litellm: ModuleType,
    dialect: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain completion returns the model's text."""
    with sdk_turn(
        f"litellm-{dialect}", upstream, "text", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        messages = [{"role": "user", "content": turn.script.prompt}]
        answer = call(litellm, dialect, turn, messages=messages)
        turn.output = answer.choices[0].message.content


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_stream(
    litellm: ModuleType,
    dialect: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A streamed completion yields the text in chunks."""
    with sdk_turn(
        f"litellm-{dialect}-stream", upstream, "text", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        messages = [{"role": "user", "content": turn.script.prompt}]
        chunks = list(call(litellm, dialect, turn, messages=messages, stream=True))
        turn.output = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_tools(
    litellm: ModuleType,
    dialect: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model asks for the tool, the test runs it, the model answers with text."""
    with sdk_turn(
        f"litellm-{dialect}-tools", upstream, "tool", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        messages: list[Any] = [{"role": "user", "content": turn.script.prompt}]
        asked = call(litellm, dialect, turn, messages=messages, tools=[SHELL_TOOL])
        message = asked.choices[0].message
        assert message.tool_calls and message.tool_calls[0].function.name == "run_shell"
        messages.append(message.model_dump(exclude_none=True))
        for tool_call in message.tool_calls:
            command = json.loads(tool_call.function.arguments)["command"]
            result = {"role": "tool", "tool_call_id": tool_call.id, "content": run_shell(command)}
            messages.append(result)
        final = call(litellm, dialect, turn, messages=messages, tools=[SHELL_TOOL])
        turn.output = final.choices[0].message.content
