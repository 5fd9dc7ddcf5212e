"""Azure OpenAI: deployment URLs, api-version, the api-key header, and a real call."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from provider_support import FakeUpstream, Reply, build, call, fixture_bytes

from tollway.dialects.endpoints import Endpoint
from tollway.errors import UpstreamError, UpstreamRejected
from tollway.providers.azure import DEFAULT_API_VERSION
from tollway.providers.base import Provider
from tollway.settings import ConfigError

KEY = "0f3c9a7b1e2d4c5a8b6f9e0d1c2b3a4f"
BASE = "https://contoso-east.openai.azure.com"


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        (Endpoint.CHAT_COMPLETIONS, "chat/completions"),
        (Endpoint.COMPLETIONS, "completions"),
        (Endpoint.EMBEDDINGS, "embeddings"),
    ],
)
def test_url_names_the_deployment_and_api_version(endpoint: Endpoint, path: str) -> None:
    provider = build("azure", api_key=KEY, base_url=BASE + "/")
    url = provider.url(call(endpoint, model="gpt4o-prod"))
    assert url == f"{BASE}/openai/deployments/gpt4o-prod/{path}?api-version=2024-10-21"
    assert DEFAULT_API_VERSION == "2024-10-21"


def test_configured_api_version_and_escaped_deployment() -> None:
    provider = build("azure", api_key=KEY, base_url=BASE, api_version="2025-04-01-preview")
    url = provider.url(call(Endpoint.CHAT_COMPLETIONS, model="team a/gpt"))
    assert url == (
        f"{BASE}/openai/deployments/team%20a%2Fgpt/chat/completions?api-version=2025-04-01-preview"
    )


def test_api_key_header_and_no_bearer() -> None:
    provider = build("azure", api_key=KEY, base_url=BASE)
    assert provider.headers(call(Endpoint.CHAT_COMPLETIONS, stream=True)) == {
        "content-type": "application/json",
        "api-key": KEY,
        "accept": "text/event-stream",
    }


def test_serves_openai_endpoints_but_not_responses() -> None:
    provider = build("azure", api_key=KEY, base_url=BASE)
    assert provider.supports(Endpoint.CHAT_COMPLETIONS)
    assert provider.supports(Endpoint.EMBEDDINGS)
    assert not provider.supports(Endpoint.RESPONSES)
    assert provider.price_provider_id == "azure"
    assert provider.price_api_url == BASE


def test_base_url_is_required() -> None:
    with pytest.raises(ConfigError, match=r"providers\.az\.base_url"):
        build("azure", name="az", api_key=KEY)


async def test_send_reaches_the_deployment(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    upstream.script(Reply(body=fixture_bytes("azure/chat_completion.json")))
    provider = provider_factory("azure", api_key=KEY, base_url=upstream.url)
    body = {"model": "gpt4o-prod", "messages": [{"role": "user", "content": "Capital?"}]}
    response = await provider.send(call(Endpoint.CHAT_COMPLETIONS, body, model="gpt4o-prod"))
    answer = await response.read()
    (seen,) = upstream.seen
    assert seen.path == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert seen.headers["api-key"] == KEY
    assert "authorization" not in seen.headers
    assert seen.json() == body
    usage = provider.usage_from_body(answer)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (15, 2)


def test_errors_keep_azure_messages_but_not_the_key() -> None:
    provider = build("azure", api_key=KEY, base_url=BASE)
    missing = {
        "error": {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist.",
        }
    }
    error = provider.error_for(404, orjson.dumps(missing), None)
    assert isinstance(error, UpstreamRejected)
    assert error.status == 404
    assert "deployment for this resource does not exist" in error.message
    denied = {"error": {"code": "401", "message": f"Access denied due to invalid key {KEY}."}}
    error = provider.error_for(401, orjson.dumps(denied), None)
    assert isinstance(error, UpstreamError)
    assert KEY not in error.message
    assert "rejected the gateway's credentials" in error.message
