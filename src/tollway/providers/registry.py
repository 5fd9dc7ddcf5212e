"""Building the configured providers from their types (plugins; see tollway.plugins)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tollway.providers.base import Provider
from tollway.settings import Settings

ProviderType = Callable[[str], type[Provider]]


def build_providers(
    settings: Settings,
    provider_type: ProviderType,
    kept: Mapping[str, Provider] | None = None,
) -> dict[str, Provider]:
    """One provider instance (with its own connection pool) per configured account,
    bounded by the settings' response and event size limits. ``provider_type`` gives the
    class registered for a ``type:`` name; ``kept`` are instances to use as they are
    (a reload that left their configuration unchanged)."""
    providers: dict[str, Provider] = {}
    for name, config in settings.providers.items():
        if kept and name in kept:
            providers[name] = kept[name]
            continue
        provider = provider_type(config.type)(name, config, settings.timeouts)
        provider.bound(settings.max_response_bytes, settings.max_event_bytes)
        providers[name] = provider
    return providers
