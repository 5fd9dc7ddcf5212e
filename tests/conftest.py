"""Shared fixtures: a scripted fake upstream, the real gateway on a real port, clients.

The fake upstream and the gateway are started once per session for speed; every test
starts from a clean script and empty records (see ``fake``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx
import openai
import pytest

from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer, gateway_settings

CLIENT_TIMEOUT = 10.0
pytest_plugins = ["services"]


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """TOLLWAY_* variables would override the settings tests build."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("TOLLWAY_"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeUpstream]:
    """The fake upstream, shared by the session (use ``fake`` in tests)."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The fake upstream with an empty script and no records."""
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture(scope="session")
def gateway(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The real gateway in front of the fake upstream, shared by the session."""
    settings = gateway_settings(fake_server, tmp_path_factory.mktemp("gateway-data"))
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """A plain HTTP client for the gateway (no key sent by default)."""
    with httpx.Client(base_url=gateway.url, timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture
def auth() -> dict[str, str]:
    """Headers carrying the master key."""
    return {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def oai(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the gateway."""
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    )
    yield client
    client.close()


@pytest.fixture
def claude(gateway: GatewayServer) -> Iterator[anthropic.Anthropic]:
    """The official Anthropic SDK pointed at the gateway."""
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    )
    yield client
    client.close()


@pytest.fixture
async def aoai(gateway: GatewayServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The async OpenAI SDK pointed at the gateway."""
    client = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    )
    yield client
    await client.close()


@pytest.fixture
async def aclaude(gateway: GatewayServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The async Anthropic SDK pointed at the gateway."""
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    )
    yield client
    await client.close()
