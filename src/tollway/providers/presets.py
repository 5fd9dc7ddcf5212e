"""OpenAI-compatible services by name, so ``type: groq`` needs only a key.

Each preset is a row of ``PRESETS``: the OpenAI provider with another default
``base_url`` and the service's id in the price database (genai-prices); its class is
built from the row. A configured ``base_url`` still wins, e.g. for a proxy in front of
the service (prices are then matched by that URL's host).

Presets serve chat.completions, completions and embeddings natively. Most of these
services do not offer the Responses API, so a Responses call is translated to chat
completions, as for every provider type without it. (Not every service offers every one
of the three either; an unsupported one is answered by the service itself.)

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

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Preset:
    """One OpenAI-compatible service: where it answers and how it is priced."""

    about: str  # the provider class's docstring
    base_url: str
    price_id: str | None = None  # None: a local server; set ``price:`` on its models


PRESETS: dict[str, Preset] = {
    "groq": Preset("Groq.", "https://api.groq.com/openai/v1", "groq"),
    "together": Preset("Together AI.", "https://api.together.xyz/v1", "together"),
    "mistral": Preset("Mistral AI (La Plateforme).", "https://api.mistral.ai/v1", "mistral"),
    "deepseek": Preset(
        "DeepSeek (its documented base URL has no ``/v1``; both forms are served).",
        "https://api.deepseek.com",
        "deepseek",
    ),
    "xai": Preset("xAI (Grok).", "https://api.x.ai/v1", "x-ai"),
    "fireworks": Preset("Fireworks AI.", "https://api.fireworks.ai/inference/v1", "fireworks"),
    "openrouter": Preset("OpenRouter.", "https://openrouter.ai/api/v1", "openrouter"),
    "perplexity": Preset(
        "Perplexity (its documented base URL has no ``/v1``).",
        "https://api.perplexity.ai",
        "perplexity",
    ),
    "ollama": Preset("A local Ollama server; no key needed.", "http://127.0.0.1:11434/v1"),
    "vllm": Preset(
        "A local vLLM server; no key needed unless it was started with ``--api-key``.",
        "http://127.0.0.1:8000/v1",
    ),
    "lmstudio": Preset("A local LM Studio server; no key needed.", "http://127.0.0.1:1234/v1"),
}


def preset_type(name: str, preset: Preset) -> type[OpenAICompatibleProvider]:
    """The provider class for one preset."""

    class PresetProvider(OpenAICompatibleProvider):
        default_base_url = preset.base_url
        price_provider_id = preset.price_id

    PresetProvider.__name__ = PresetProvider.__qualname__ = f"{name.capitalize()}Provider"
    PresetProvider.__doc__ = preset.about
    return PresetProvider


PRESET_TYPES = {name: preset_type(name, preset) for name, preset in PRESETS.items()}
"""Preset provider classes by ``type`` name."""
