"""Anthropic's Messages API.

https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from tollway.dialects.endpoints import Endpoint
from tollway.providers.base import Provider, UpstreamCall
from tollway.settings import Dialect

_PATHS = {
    Endpoint.MESSAGES: "/v1/messages",
    Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens",
}
# https://docs.anthropic.com/en/api/versioning
DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    """``x-api-key`` auth; ``base_url`` has no ``/v1`` as in the Anthropic SDK."""

    dialect = Dialect.ANTHROPIC
    endpoints = frozenset(_PATHS)
    price_provider_id = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def url(self, call: UpstreamCall) -> str:
        """``base_url`` plus the endpoint path."""
        return self.base_url + _PATHS[call.endpoint]

    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """The provider key plus the client's API version and beta flags."""
        headers = {
            "content-type": "application/json",
            "anthropic-version": call.client_headers.get("anthropic-version", DEFAULT_VERSION),
        }
        beta = call.client_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        key = self.api_key(call)
        if key:
            headers["x-api-key"] = key
        if call.stream:
            headers["accept"] = "text/event-stream"
        return headers
