"""OpenAI-compatible services by name, so ``type: groq`` needs only a key.

Each preset is the OpenAI provider with another default ``base_url`` and the
service's id in the price database (genai-prices), registered under its ``type`` name
like every provider (entry points, see pyproject.toml). A configured ``base_url``
still wins, e.g. for a proxy in front of the service (prices are then matched by that
URL's host).

Presets serve chat.completions, completions and embeddings natively. Most of these
services do not offer the Responses API, so a Responses call is translated to chat
completions, as for every provider type without it. (Not every service offers every one
of the three either; an unsupported one is answered by the service itself.)

Local servers (Ollama, vLLM, LM Studio) need no key: without ``api_key`` no
``authorization`` header is sent. They have no price id (``None``, inherited); set
``price:`` on their models.

Base URLs, from each service's OpenAI-compatibility docs:

- groq: https://console.groq.com/docs/openai
- together: https://docs.together.ai/docs/openai-api-compatibility
- mistral: https://docs.mistral.ai/api/
- deepseek: https://api-docs.deepseek.com/
- xai: https://docs.x.ai/docs/api-reference
- fireworks: https://docs.fireworks.ai/tools-sdks/openai-compatibility
- openrouter: https://openrouter.ai/docs/api-reference/overview
- perplexity: https://docs.perplexity.ai/api-reference/chat-completions-post
- ollama: https://github.com/ollama/ollama/blob/main/docs/openai.md
- vllm: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html
- lmstudio: https://lmstudio.ai/docs/app/api/endpoints/openai
"""

from __future__ import annotations

from typing import ClassVar

from tollway.dialects.endpoints import Endpoint
from tollway.providers.openai import OpenAIProvider

COMPATIBLE_ENDPOINTS = frozenset(
    {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
)


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible service: the OpenAI provider without the Responses API."""

    endpoints = COMPATIBLE_ENDPOINTS
    # OpenAIProvider's "openai" is inferred as str, so mypy sees None as a narrowing.
    price_provider_id: ClassVar[str | None] = None
    chat_output_limit_field: ClassVar[str] = "max_tokens"


class GroqProvider(OpenAICompatibleProvider):
    """Groq."""

    default_base_url = "https://api.groq.com/openai/v1"
    price_provider_id = "groq"


class TogetherProvider(OpenAICompatibleProvider):
    """Together AI."""

    default_base_url = "https://api.together.xyz/v1"
    price_provider_id = "together"


class MistralProvider(OpenAICompatibleProvider):
    """Mistral AI (La Plateforme)."""

    default_base_url = "https://api.mistral.ai/v1"
    price_provider_id = "mistral"


class DeepseekProvider(OpenAICompatibleProvider):
    """DeepSeek (its documented base URL has no ``/v1``; both forms are served)."""

    default_base_url = "https://api.deepseek.com"
    price_provider_id = "deepseek"


class XaiProvider(OpenAICompatibleProvider):
    """xAI (Grok)."""

    default_base_url = "https://api.x.ai/v1"
    price_provider_id = "x-ai"


class FireworksProvider(OpenAICompatibleProvider):
    """Fireworks AI."""

    default_base_url = "https://api.fireworks.ai/inference/v1"
    price_provider_id = "fireworks"


class OpenrouterProvider(OpenAICompatibleProvider):
    """OpenRouter."""

    default_base_url = "https://openrouter.ai/api/v1"
    price_provider_id = "openrouter"


class PerplexityProvider(OpenAICompatibleProvider):
    """Perplexity (its documented base URL has no ``/v1``)."""

    default_base_url = "https://api.perplexity.ai"
    price_provider_id = "perplexity"


class OllamaProvider(OpenAICompatibleProvider):
    """A local Ollama server; no key needed."""

    default_base_url = "http://127.0.0.1:11434/v1"


class VllmProvider(OpenAICompatibleProvider):
    """A local vLLM server; no key needed unless it was started with ``--api-key``."""

    default_base_url = "http://127.0.0.1:8000/v1"


class LmstudioProvider(OpenAICompatibleProvider):
    """A local LM Studio server; no key needed."""

    default_base_url = "http://127.0.0.1:1234/v1"
