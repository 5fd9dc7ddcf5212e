"""Azure OpenAI: the OpenAI API behind per-deployment URLs and an ``api-key`` header.

    POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={version}

``base_url`` is the resource endpoint (``https://{resource}.openai.azure.com``) and the
upstream model id of a Tollway model is the *deployment name*. The body is the OpenAI
body unchanged; Azure ignores its ``model`` field. ``api_version`` defaults to the
latest GA data-plane version. The Responses API is not offered here (Azure serves it
under another URL scheme).

https://learn.microsoft.com/azure/ai-foundry/openai/reference
https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle
"""

from __future__ import annotations

from urllib.parse import quote

from tollway.config import ProviderConfig, Timeouts
from tollway.dialects.endpoints import Endpoint
from tollway.providers.base import UpstreamCall
from tollway.providers.openai import OpenAIProvider
from tollway.settings import ConfigError

_PATHS = {
    Endpoint.CHAT_COMPLETIONS: "chat/completions",
    Endpoint.COMPLETIONS: "completions",
    Endpoint.EMBEDDINGS: "embeddings",
}
# The latest GA data-plane inference version with deployment URLs.
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    """``api-key`` auth; the deployment name and ``api-version`` are in the URL."""

    endpoints = frozenset(_PATHS)
    price_provider_id = "azure"
    default_base_url = ""

    def __init__(self, name: str, config: ProviderConfig, default_timeouts: Timeouts) -> None:
        if not config.base_url:
            raise ConfigError(
                f"providers.{name}.base_url: Azure OpenAI needs the resource endpoint, "
                "e.g. https://my-resource.openai.azure.com"
            )
        super().__init__(name, config, default_timeouts)
        self.api_version = config.api_version or DEFAULT_API_VERSION

    def url(self, call: UpstreamCall) -> str:
        """The deployment's URL for the endpoint, with ``api-version``."""
        deployment = quote(call.model, safe="")
        api_version = quote(self.api_version, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{_PATHS[call.endpoint]}"
            f"?api-version={api_version}"
        )

    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Content type and the ``api-key`` header."""
        headers = {"content-type": "application/json"}
        key = self.api_key(call)
        if key:
            headers["api-key"] = key
        if call.stream:
            headers["accept"] = "text/event-stream"
        return headers
