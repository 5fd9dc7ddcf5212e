"""OpenAI-compatible services by name, so ``type: groq`` needs only a key.

Each preset is the OpenAI provider with another default ``base_url`` and the service's
id in the price database (genai-prices). A configured ``base_url`` still wins, e.g. for
a proxy in front of the service (prices are then matched by that URL's host).

Presets serve chat.completions, completions and embeddings. The Responses API stays
with ``type: openai``: most of these services do not offer it, and a client asking for it
gets a clear 400 from the pipeline instead of an upstream 404. (Not every service offers
every one of the three either; an unsupported one is answered by the service itself.)

Local servers (Ollama, vLLM, LM Studio) need no key: without ``api_key`` no
``authorization`` header is sent. They have no price id; set ``price:`` on their models.

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


class DeepSeekProvider(OpenAICompatibleProvider):
    """DeepSeek (its documented base URL has no ``/v1``; both forms are served)."""

    default_base_url = "https://api.deepseek.com"
    price_provider_id = "deepseek"


class XAIProvider(OpenAICompatibleProvider):
    """xAI (Grok)."""

    default_base_url = "https://api.x.ai/v1"
    price_provider_id = "x-ai"


class FireworksProvider(OpenAICompatibleProvider):
    """Fireworks AI."""

    default_base_url = "https://api.fireworks.ai/inference/v1"
    price_provider_id = "fireworks"


class OpenRouterProvider(OpenAICompatibleProvider):
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


class VLLMProvider(OpenAICompatibleProvider):
    """A local vLLM server; no key needed unless it was started with ``--api-key``."""

    default_base_url = "http://127.0.0.1:8000/v1"


class LMStudioProvider(OpenAICompatibleProvider):
    """A local LM Studio server; no key needed."""

    default_base_url = "http://127.0.0.1:1234/v1"
