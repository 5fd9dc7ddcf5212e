"""LangChain's OpenAI and Anthropic chat models through the gateway: ``invoke``,
``stream``, and a tool bound with ``bind_tools`` that the test really runs, each on a
model of either upstream type (so each dialect is also translated to the other)."""

from __future__ import annotations

from typing import Any

import pytest
from clients_support import UPSTREAMS, SdkTurn, run_shell, sdk_turn
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from fake_upstream import FakeUpstream
from harness import GatewayServer

TIMEOUT = 30.0
shell = tool(run_shell)


def chat_model(sdk: str, turn: SdkTurn) -> Any:
    """The LangChain chat model of ``sdk`` with the gateway as its endpoint."""
    if sdk == "openai":
        return ChatOpenAI(
            model=turn.model,
            base_url=turn.gateway_url + "/v1",
            api_key=turn.key.secret,
            max_retries=0,
            timeout=TIMEOUT,
        )
    return ChatAnthropic(
        model=turn.model,
        base_url=turn.gateway_url,
        api_key=turn.key.secret,
        max_retries=0,
        timeout=TIMEOUT,
        max_tokens=1024,
    )


@pytest.fixture(autouse=True)
def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """LangSmith traces only when asked; make sure nothing here asks."""
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_invoke(
    sdk: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``invoke`` returns the model's text."""
    with sdk_turn(
        f"langchain-{sdk}-invoke", upstream, "text", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        turn.output = chat_model(sdk, turn).invoke(turn.script.prompt).text


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_stream(
    sdk: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``stream`` yields the text in chunks."""
    with sdk_turn(
        f"langchain-{sdk}-stream", upstream, "text", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        chunks = list(chat_model(sdk, turn).stream(turn.script.prompt))
        assert len(chunks) > 1, chunks
        turn.output = "".join(chunk.text for chunk in chunks)


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_tools(
    sdk: str,
    upstream: str,
    clients_gateway: GatewayServer,
    clients_fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model asks for the bound tool, the test runs it, the model answers with text."""
    with sdk_turn(
        f"langchain-{sdk}-tools", upstream, "tool", clients_gateway, clients_fake, monkeypatch
    ) as turn:
        model = chat_model(sdk, turn).bind_tools([shell])
        messages: list[BaseMessage] = [HumanMessage(turn.script.prompt)]
        asked = model.invoke(messages)
        assert [call["name"] for call in asked.tool_calls] == ["run_shell"], asked
        messages += [asked, *(shell.invoke(call) for call in asked.tool_calls)]
        turn.output = model.invoke(messages).text
