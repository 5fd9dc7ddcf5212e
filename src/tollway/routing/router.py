"""Resolve a client-facing model name to a deployment.

Exact names win; then glob patterns (``claude-*``) in config order, where the upstream
model is the requested name unless the entry says otherwise.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tollway.errors import ModelNotFound
from tollway.providers.base import Provider
from tollway.settings import ModelConfig


@dataclass(frozen=True, slots=True)
class Route:
    """Where one call goes."""

    model: str
    provider: Provider
    upstream_model: str
    config: ModelConfig


def is_pattern(name: str) -> bool:
    """Whether a configured model name is a glob."""
    return any(ch in name for ch in "*?[")


class Router:
    """Model names to deployments; built once per app."""

    def __init__(self, models: list[ModelConfig], providers: dict[str, Provider]) -> None:
        self._exact: dict[str, Route] = {}
        self._patterns: list[tuple[ModelConfig, Provider]] = []
        for entry in models:
            provider = providers[entry.provider]
            if is_pattern(entry.name):
                self._patterns.append((entry, provider))
            else:
                self._exact[entry.name] = Route(entry.name, provider, entry.upstream_model, entry)

    def resolve(self, model: str) -> Route:
        """The route for ``model``, or ModelNotFound naming it."""
        route = self._exact.get(model)
        if route is not None:
            return route
        for entry, provider in self._patterns:
            if fnmatch.fnmatchcase(model, entry.name):
                return Route(model, provider, entry.model or model, entry)
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not served by this gateway.",
            param="model",
        )

    def names(self) -> list[str]:
        """Configured model names that are not patterns, for model listings."""
        return list(self._exact)

    def route_for_listing(self, name: str) -> Route | None:
        """The route of a listed (exact) model name."""
        return self._exact.get(name)
