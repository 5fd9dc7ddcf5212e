"""Provider types by name, and building the configured providers."""

from __future__ import annotations

from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.base import Provider
from tollway.providers.openai import OpenAIProvider
from tollway.settings import Dialect, Settings

PROVIDER_TYPES: dict[Dialect, type[Provider]] = {
    Dialect.OPENAI: OpenAIProvider,
    Dialect.ANTHROPIC: AnthropicProvider,
}


def build_providers(settings: Settings) -> dict[str, Provider]:
    """One provider instance (with its own connection pool) per configured account."""
    return {
        name: PROVIDER_TYPES[config.type](name, config, settings.timeouts)
        for name, config in settings.providers.items()
    }
