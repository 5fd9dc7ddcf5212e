"""OpenAI-compatible presets: default base URLs, price ids, keys, and a real call."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from genai_prices import data as price_data
from provider_support import FakeUpstream, Reply, build, call

from tollway.dialects.endpoints import Endpoint
from tollway.plugins.groups import Group, names
from tollway.providers.base import Provider
from tollway.providers.openai import OpenAIProvider

KEY = "sk-preset-SECRET-1a2b3c4d5e6f"
# type: (default base URL, price-database id)
HOSTED = {
    "groq": ("https://api.groq.com/openai/v1", "groq"),
    "together": ("https://api.together.xyz/v1", "together"),
    "mistral": ("https://api.mistral.ai/v1", "mistral"),
    "deepseek": ("https://api.deepseek.com", "deepseek"),
    "xai": ("https://api.x.ai/v1", "x-ai"),
    "fireworks": ("https://api.fireworks.ai/inference/v1", "fireworks"),
    "openrouter": ("https://openrouter.ai/api/v1", "openrouter"),
    "perplexity": ("https://api.perplexity.ai", "perplexity"),
}
LOCAL = {
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
}
PATHS = {
    Endpoint.CHAT_COMPLETIONS: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
}


def test_every_type_is_registered_through_entry_points() -> None:
    expected = {"openai", "anthropic", "azure", "gemini", "bedrock", *HOSTED, *LOCAL}
    assert set(names(Group.PROVIDERS)) == expected


@pytest.mark.parametrize("kind", sorted(HOSTED))
@pytest.mark.parametrize("endpoint", sorted(PATHS))
def test_hosted_preset_url_and_bearer_key(kind: str, endpoint: Endpoint) -> None:
    base, _ = HOSTED[kind]
    provider = build(kind, api_key=KEY)
    request = call(endpoint)
    assert isinstance(provider, OpenAIProvider)
    assert provider.url(request) == base + PATHS[endpoint]
    assert provider.headers(request) == {
        "content-type": "application/json",
        "authorization": f"Bearer {KEY}",
    }


@pytest.mark.parametrize("kind", sorted(HOSTED))
def test_hosted_preset_price_id_is_in_the_price_database(kind: str) -> None:
    provider = build(kind, api_key=KEY)
    known = {p.id for p in price_data.providers}
    assert provider.price_provider_id == HOSTED[kind][1]
    assert provider.price_provider_id in known
    assert provider.price_api_url is None  # matched by id, not by URL


@pytest.mark.parametrize("kind", sorted(LOCAL))
def test_local_servers_need_no_key(kind: str) -> None:
    provider = build(kind)
    request = call(Endpoint.CHAT_COMPLETIONS, stream=True)
    assert provider.url(request) == LOCAL[kind] + "/chat/completions"
    assert provider.headers(request) == {
        "content-type": "application/json",
        "accept": "text/event-stream",
    }
    assert provider.price_provider_id is None


@pytest.mark.parametrize("kind", sorted({*HOSTED, *LOCAL}))
def test_presets_serve_chat_completions_and_embeddings_but_not_responses(kind: str) -> None:
    provider = build(kind, api_key=KEY)
    assert provider.endpoints == frozenset(PATHS)
    assert not provider.supports(Endpoint.RESPONSES)
    assert build("openai", api_key=KEY).supports(Endpoint.RESPONSES)


def test_configured_base_url_wins_and_is_used_for_prices() -> None:
    provider = build("groq", api_key=KEY, base_url="https://proxy.example.com/groq/v1/")
    assert provider.url(call(Endpoint.EMBEDDINGS)) == "https://proxy.example.com/groq/v1/embeddings"
    assert provider.price_api_url == "https://proxy.example.com/groq/v1"


def test_a_project_credential_replaces_the_preset_key() -> None:
    provider = build("together", api_key=KEY)
    headers = provider.headers(call(Endpoint.CHAT_COMPLETIONS, credential="sk-project-77"))
    assert headers["authorization"] == "Bearer sk-project-77"


async def test_local_preset_sends_to_its_server_without_authorization(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    body = b'{"object": "chat.completion", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}'
    upstream.script(Reply(body=body))
    provider = provider_factory("ollama", base_url=upstream.url + "/v1")
    request = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    response = await provider.send(call(Endpoint.CHAT_COMPLETIONS, request, model="llama3.2"))
    answer = await response.read()
    (seen,) = upstream.seen
    assert seen.path == "/v1/chat/completions"
    assert "authorization" not in seen.headers
    assert seen.json() == request
    usage = provider.usage_from_body(answer)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (3, 2)


async def test_hosted_preset_error_does_not_leak_the_key(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    error_body = {"error": {"message": f"Invalid API Key {KEY}", "type": "invalid_request_error"}}
    upstream.script(Reply(status=400, body=orjson.dumps(error_body)))
    provider = provider_factory("groq", api_key=KEY, base_url=upstream.url + "/openai/v1")
    request = call(Endpoint.CHAT_COMPLETIONS, {"model": "llama-3.3-70b-versatile"})
    response = await provider.send(request)
    error = provider.error_for(response.status, await response.read(), None, request)
    assert upstream.seen[0].path == "/openai/v1/chat/completions"
    assert upstream.seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in error.message
    assert "[redacted]" in error.message
