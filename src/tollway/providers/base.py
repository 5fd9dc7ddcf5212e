"""The provider interface: one small class per upstream API.

A provider turns a validated client request into an upstream HTTP call (URL, auth
headers, body) and turns the upstream's error answers into the error tree. The transport,
pipeline and dialect rendering are shared, so a new provider is usually a few dozen lines.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import (
    TollwayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollway.providers.transport import Transport, UpstreamResponse
from tollway.settings import Dialect, ProviderConfig, Timeouts

# Client statuses that describe the request itself; they reach the client as they are.
_CLIENT_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
_KEYISH = re.compile(r"\b(?:sk|pk|key|tok)[-_][A-Za-z0-9_\-*.]{6,}")


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One call to make upstream."""

    endpoint: Endpoint
    body: bytes
    stream: bool
    client_headers: Mapping[str, str]
    credential: str | None = None


class Provider(ABC):
    """An upstream LLM API account."""

    dialect: ClassVar[Dialect]
    endpoints: ClassVar[frozenset[Endpoint]]
    default_base_url: ClassVar[str]

    def __init__(self, name: str, config: ProviderConfig, default_timeouts: Timeouts) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url or self.default_base_url
        self._api_key = config.api_key.get_secret_value() if config.api_key else None
        self._transport = Transport(
            name, config.timeouts or default_timeouts, config.max_connections
        )

    @abstractmethod
    def url(self, endpoint: Endpoint) -> str:
        """The upstream URL for an endpoint."""

    @abstractmethod
    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Upstream request headers: this provider's credential, never the client's."""

    def supports(self, endpoint: Endpoint) -> bool:
        """Whether this provider serves ``endpoint`` natively."""
        return endpoint in self.endpoints

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        """Send the call; returns once response headers arrive."""
        return await self._transport.post(
            self.url(call.endpoint), self.headers(call), call.body, stream=call.stream
        )

    def error_for(
        self, status: int, body: bytes, retry_after: str | None, call: UpstreamCall | None = None
    ) -> TollwayError:
        """Map a non-2xx upstream answer onto the error tree, keeping safe messages."""
        detail = self.redact(_error_message(body), call)
        prefix = f"Provider '{self.name}'"
        if status in (401, 403):
            # The gateway's own credential was refused: the client cannot fix that and
            # must not learn anything about the credential.
            return UpstreamError(f"{prefix} rejected the gateway's credentials.")
        if status == 429:
            headers = {"retry-after": retry_after} if retry_after else {}
            message = f"{prefix} is rate limiting requests" + (f": {detail}" if detail else ".")
            return UpstreamUnavailable(message, code="upstream_rate_limited", headers=headers)
        if status in _CLIENT_STATUSES:
            return UpstreamRejected(detail or f"{prefix} rejected the request.", status=status)
        message = f"{prefix} failed with status {status}" + (f": {detail}" if detail else ".")
        if status in (503, 529):
            return UpstreamUnavailable(message)
        if status == 504:
            return UpstreamTimeout(message)
        return UpstreamError(message)

    def api_key(self, call: UpstreamCall) -> str | None:
        """The credential for this call: the project's own, else the provider's."""
        return call.credential or self._api_key

    def redact(self, text: str, call: UpstreamCall | None = None) -> str:
        """Remove the credentials in play and anything key-shaped from ``text``."""
        for secret in (self._api_key, call.credential if call else None):
            if secret:
                text = text.replace(secret, "[redacted]")
        return _KEYISH.sub("[redacted]", text)

    async def aclose(self) -> None:
        """Release pooled connections."""
        await self._transport.aclose()


def _error_message(body: bytes) -> str:
    """The message inside an OpenAI- or Anthropic-shaped error body, if any."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:2000]
        if isinstance(error, str):
            return error[:2000]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:2000]
    return ""
