"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, LM Studio, Groq, ...).

https://platform.openai.com/docs/api-reference
"""

from __future__ import annotations

from typing import ClassVar

from tollway.dialects.endpoints import Endpoint
from tollway.providers.base import Provider, UpstreamCall
from tollway.settings import Dialect

_PATHS = {
    Endpoint.CHAT_COMPLETIONS: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.RESPONSES: "/responses",
}


class OpenAIProvider(Provider):
    """Bearer-token auth; ``base_url`` ends in ``/v1`` as in the OpenAI SDK."""

    dialect = Dialect.OPENAI
    endpoints = frozenset(_PATHS)
    price_provider_id: ClassVar[str | None] = "openai"
    default_base_url = "https://api.openai.com/v1"

    @property
    def served(self) -> frozenset[Endpoint]:
        """Without ``responses_api`` (a server lacking ``/v1/responses``), Responses calls
        are translated to chat completions."""
        if self.config.responses_api:
            return self.endpoints
        return self.endpoints - {Endpoint.RESPONSES}

    def url(self, call: UpstreamCall) -> str:
        """``base_url`` plus the endpoint path."""
        return self.base_url + _PATHS[call.endpoint]

    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Content type, the provider key, and organization/project when configured."""
        headers = {"content-type": "application/json"}
        key = self.api_key(call)
        if key:
            headers["authorization"] = f"Bearer {key}"
        if self.config.organization:
            headers["openai-organization"] = self.config.organization
        if self.config.project:
            headers["openai-project"] = self.config.project
        if call.stream:
            headers["accept"] = "text/event-stream"
        return headers
