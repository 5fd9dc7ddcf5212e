"""Provider types by name, and building the configured providers."""

from __future__ import annotations

from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.azure import AzureOpenAIProvider
from tollway.providers.base import Provider
from tollway.providers.bedrock import BedrockProvider
from tollway.providers.gemini import GeminiProvider
from tollway.providers.openai import OpenAIProvider
from tollway.providers.presets import PRESET_TYPES
from tollway.settings import Settings

PROVIDER_TYPES: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "azure": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
    **PRESET_TYPES,
}


def build_providers(settings: Settings) -> dict[str, Provider]:
    """One provider instance (with its own connection pool) per configured account,
    bounded by the settings' response and event size limits."""
    providers: dict[str, Provider] = {}
    for name, config in settings.providers.items():
        provider = PROVIDER_TYPES[config.type](name, config, settings.timeouts)
        provider.bound(settings.max_response_bytes, settings.max_event_bytes)
        providers[name] = provider
    return providers
