"""The provider interface: one small class per upstream API.

A provider turns a call (already in its own dialect) into an upstream HTTP request (URL,
auth headers, body), reads usage out of its answers, splits its stream into events, and
maps its error answers onto the error tree. Transport, retries, translation and
rendering are shared, so a new provider is usually a few dozen lines:

- ``url(call)`` and ``headers(call)``: where and how to authenticate (required);
- ``send(call)``: override to sign requests (Bedrock);
- ``stream_events(response)``: override for non-SSE streams (Bedrock's event stream);
- ``usage_from_body`` / ``stream_meter``: override for other usage shapes.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import orjson

from tollway.config import ProviderConfig, Timeouts
from tollway.dialects.endpoints import Endpoint
from tollway.errors import (
    TollwayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollway.metering.stream_meter import StreamMeter
from tollway.metering.usage import Usage, from_body
from tollway.providers.transport import Transport, UpstreamResponse
from tollway.settings import Dialect, Settings
from tollway.sse import EventSplitter

log = logging.getLogger("tollway.providers")
# Client statuses that describe the request itself; they reach the client as they are.
_CLIENT_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
_KEYISH = re.compile(r"\b(?:(?:sk|pk|key|tok)[-_][A-Za-z0-9_\-*.]{6,}|AIza[0-9A-Za-z_\-]{20,})")
# Phrases providers use when the prompt does not fit the model's context window.
_CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "context window",
    "too long",
    "too many tokens",
)
# Until ``bound`` is called (build_providers does), a provider has the default bounds.
_MAX_RESPONSE_BYTES: int = Settings.model_fields["max_response_bytes"].default
_MAX_EVENT_BYTES: int = Settings.model_fields["max_event_bytes"].default


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One call to make upstream, already in the provider's dialect."""

    endpoint: Endpoint
    body: bytes
    stream: bool
    client_headers: Mapping[str, str]
    credential: str | None = None
    model: str = ""
    # Added by telemetry (W3C trace context), after any signing: never credentials.
    trace_headers: Mapping[str, str] = field(default_factory=dict)


class Provider(ABC):
    """An upstream LLM API account."""

    dialect: ClassVar[Dialect]
    endpoints: ClassVar[frozenset[Endpoint]]
    default_base_url: ClassVar[str]
    # The provider's id in the price database (None: match by base_url or model name).
    price_provider_id: ClassVar[str | None] = None
    # Media types of a streamed answer.
    stream_content_types: ClassVar[frozenset[str]] = frozenset({"text/event-stream"})
    # The chat-completions field for an output limit the gateway sets (OpenAI's reasoning
    # models take only max_completion_tokens; older compatible servers only max_tokens).
    chat_output_limit_field: ClassVar[str] = "max_completion_tokens"

    def __init__(self, name: str, config: ProviderConfig, default_timeouts: Timeouts) -> None:
        self.name = name
        self.config = config
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self._api_key = config.api_key.get_secret_value() if config.api_key else None
        self.max_event_bytes = _MAX_EVENT_BYTES
        self._transport = Transport(
            name, config.timeouts or default_timeouts, config.max_connections, _MAX_RESPONSE_BYTES
        )

    def bound(self, max_response_bytes: int, max_event_bytes: int) -> None:
        """Cap what one answer may hold in memory: a whole body, and one stream event."""
        self._transport.max_response_bytes = max_response_bytes
        self.max_event_bytes = max_event_bytes

    @abstractmethod
    def url(self, call: UpstreamCall) -> str:
        """The upstream URL for a call."""

    @abstractmethod
    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Upstream request headers: this provider's credential, never the client's."""

    @property
    def served(self) -> frozenset[Endpoint]:
        """The endpoints this provider serves natively (its type's, unless configured
        otherwise)."""
        return self.endpoints

    def supports(self, endpoint: Endpoint) -> bool:
        """Whether this provider serves ``endpoint`` natively."""
        return endpoint in self.served

    @property
    def price_api_url(self) -> str | None:
        """A user-set base URL, for matching the price database by host."""
        return self.config.base_url

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        """Send the call; returns once response headers arrive."""
        headers = {**call.trace_headers, **self.headers(call)}  # never over a provider's
        return await self._transport.post(self.url(call), headers, call.body, stream=call.stream)

    async def stream_events(self, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        """The response's events, each whole (SSE framing by default)."""
        splitter = EventSplitter(self.max_event_bytes)
        async for chunk in upstream.chunks():
            for event in splitter.feed(chunk):
                yield event
        if splitter.rest().strip():
            raise UpstreamError("The provider's stream ended in the middle of an event.")

    def usage_from_body(self, body: bytes) -> Usage | None:
        """Usage reported in a complete response body."""
        return from_body(body, self.dialect is Dialect.ANTHROPIC)

    def stream_meter(self, endpoint: Endpoint, strip_usage: bool) -> StreamMeter:
        """Reads usage from this provider's stream events."""
        return StreamMeter(endpoint, strip_usage)

    def stream_error(self, event: bytes, call: UpstreamCall | None = None) -> UpstreamError | None:
        """The error an upstream stream event reports, if it is an error event (OpenAI:
        ``data: {"error": ...}``; Anthropic: ``event: error``), with its message redacted."""
        if b"error" not in event[:48]:
            return None
        data = _event_data(event)
        if not isinstance(data, dict):
            return None
        error = data.get("error")
        if not isinstance(error, dict):
            # The Responses API puts the error's fields at the top of an "error" event.
            error = data if data.get("type") == "error" and "message" in data else None
        if error is None or not (data.get("type") == "error" or event.startswith(b"data:")):
            return None
        detail = self.redact(str(error.get("message") or ""), call)
        kind = str(error.get("type") or "")
        message = f"Provider '{self.name}' reported an error mid-stream" + (
            f": {detail}" if detail else "."
        )
        if kind == "overloaded_error":
            return UpstreamUnavailable(message)
        if kind in ("rate_limit_error", "rate_limit_exceeded"):
            return UpstreamUnavailable(message, code="upstream_rate_limited")
        return UpstreamError(message)

    def api_key(self, call: UpstreamCall) -> str | None:
        """The credential for this call: the project's own, else the provider's."""
        return call.credential or self._api_key

    def error_for(
        self, status: int, body: bytes, retry_after: str | None, call: UpstreamCall | None = None
    ) -> TollwayError:
        """Map a non-2xx upstream answer onto the error tree, keeping safe messages."""
        detail = self.redact(_error_message(body), call)
        prefix = f"Provider '{self.name}'"
        if status in (401, 403):
            # The gateway's own credential was refused: the client cannot fix that and
            # must not learn anything about it; the operator needs the reason.
            log.warning(
                "provider refused the gateway's credentials",
                extra={"fields": {"provider": self.name, "status": status, "detail": detail}},
            )
            return UpstreamError(f"{prefix} rejected the gateway's credentials.")
        if status == 429:
            headers = {"retry-after": retry_after} if retry_after else {}
            message = f"{prefix} is rate limiting requests" + (f": {detail}" if detail else ".")
            return UpstreamUnavailable(message, code="upstream_rate_limited", headers=headers)
        if status in _CLIENT_STATUSES:
            error = UpstreamRejected(detail or f"{prefix} rejected the request.", status=status)
            if any(phrase in detail.lower() for phrase in _CONTEXT_PHRASES):
                error.code = "context_length_exceeded"
            return error
        message = f"{prefix} failed with status {status}" + (f": {detail}" if detail else ".")
        if status in (503, 529):
            wait = {"retry-after": retry_after} if retry_after else {}
            return UpstreamUnavailable(message, headers=wait)
        if status == 504:
            return UpstreamTimeout(message)
        return UpstreamError(message)

    def redact(self, text: str, call: UpstreamCall | None = None) -> str:
        """Remove the credentials in play and anything key-shaped from ``text``."""
        for secret in (self._api_key, call.credential if call else None):
            if secret:
                text = text.replace(secret, "[redacted]")
        return _KEYISH.sub("[redacted]", text)

    async def aclose(self) -> None:
        """Release pooled connections."""
        await self._transport.aclose()


def _event_data(event: bytes) -> object:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    try:
        return orjson.loads(b"\n".join(lines)) if lines else None
    except orjson.JSONDecodeError:
        return None


def _error_message(body: bytes) -> str:
    """The message inside an OpenAI-, Anthropic- or Google-shaped error body, if any."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini wraps errors in a list on streaming endpoints
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:2000]
        if isinstance(error, str):
            return error[:2000]
        for key in ("message", "Message"):
            if isinstance(data.get(key), str):
                return str(data[key])[:2000]
    return ""
