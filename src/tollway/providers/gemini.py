"""Google's Gemini API (generateContent and streamGenerateContent).

    POST {base_url}/models/{model}:generateContent
    POST {base_url}/models/{model}:streamGenerateContent?alt=sse

The key travels in the ``x-goog-api-key`` header, never in the URL, so it cannot reach
access logs or error messages that quote URLs. Streams use ``alt=sse``: every event is
one whole ``GenerateContentResponse``; there is no ``[DONE]``, the chunk with a
``finishReason`` is the last one and its ``usageMetadata`` holds the totals.

Usage is read from ``usageMetadata`` by ``metering.usage.from_gemini``.

Errors are ``{"error": {"code", "message", "status", "details"}}`` (wrapped in a list on
streaming URLs). An invalid key is a 400 with reason ``API_KEY_INVALID``: it is treated
like a 401, so clients never learn about the gateway's key. A 429's ``RetryInfo`` delay
becomes ``retry-after``.

https://ai.google.dev/api/generate-content
https://ai.google.dev/gemini-api/docs/troubleshooting
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import TollwayError, UpstreamError
from tollway.metering.stream_meter import StreamMeter, event_data
from tollway.metering.usage import Usage, from_gemini, from_json
from tollway.providers.base import Provider, UpstreamCall
from tollway.providers.transport import UpstreamResponse
from tollway.settings import Dialect

_UNAUTHENTICATED = frozenset({"API_KEY_INVALID", "UNAUTHENTICATED", "PERMISSION_DENIED"})
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


def model_path(model: str) -> str:
    """``models/{id}`` (or a ``tunedModels/{id}`` name as given), escaped for a URL."""
    if model.startswith("tunedModels/"):
        return "tunedModels/" + quote(model.removeprefix("tunedModels/"), safe="")
    return "models/" + quote(model.removeprefix("models/"), safe="")


class GeminiStreamMeter(StreamMeter):
    """Usage from the last ``usageMetadata``; finished at a ``finishReason``."""

    def observe(self, event: bytes) -> bytes | None:
        """Account for one ``GenerateContentResponse`` event; it passes unchanged."""
        self.retain(event)
        if b'"usageMetadata"' not in event and b"Reason" not in event:
            return event
        try:
            data = orjson.loads(event_data(event))
        except orjson.JSONDecodeError:
            return event
        if not isinstance(data, dict):
            return event
        usage = from_gemini(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage  # cumulative: the last chunk holds the totals
        candidates = data.get("candidates")
        if isinstance(candidates, list) and any(
            isinstance(c, dict) and c.get("finishReason") for c in candidates
        ):
            self.finished = True
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.finished = True  # a blocked prompt gets no candidates at all
        return event


class GeminiProvider(Provider):
    """``x-goog-api-key`` auth; the model id is part of the URL."""

    dialect = Dialect.GEMINI
    endpoints = frozenset({Endpoint.GENERATE_CONTENT})
    price_provider_id = "google"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"

    @property
    def price_api_url(self) -> None:
        """None: only Google serves this API, so prices are always Google's."""
        return None

    def url(self, call: UpstreamCall) -> str:
        """The model's generateContent URL (streamGenerateContent with SSE for streams)."""
        if call.stream:
            return f"{self.base_url}/{model_path(call.model)}:streamGenerateContent?alt=sse"
        return f"{self.base_url}/{model_path(call.model)}:generateContent"

    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Content type and the key in ``x-goog-api-key``."""
        headers = {"content-type": "application/json"}
        key = self.api_key(call)
        if key:
            headers["x-goog-api-key"] = key
        if call.stream:
            headers["accept"] = "text/event-stream"
        return headers

    def usage_from_body(self, body: bytes) -> Usage | None:
        """Usage from a ``GenerateContentResponse``."""
        return from_json(body, "usageMetadata", from_gemini)

    def stream_meter(self, endpoint: Endpoint, strip_usage: bool) -> StreamMeter:
        """Reads ``usageMetadata`` from the stream's chunks."""
        return GeminiStreamMeter(endpoint, strip_usage)

    async def stream_events(self, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        """SSE events; an error object inside the stream ends it with an error."""
        async for event in super().stream_events(upstream):
            if b'"error"' in event[:64]:
                data = _json(event_data(event))
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    raise self._stream_error(data)
            yield event

    def error_for(
        self, status: int, body: bytes, retry_after: str | None, call: UpstreamCall | None = None
    ) -> TollwayError:
        """Google's error shape: a bad key is a 401, ``RetryInfo`` is ``retry-after``."""
        error = _google_error(body)
        if _reasons(error) & _UNAUTHENTICATED:
            status = 401
        if status == 429 and retry_after is None:
            retry_after = _retry_delay(error)
        return super().error_for(status, body, retry_after, call)

    def _stream_error(self, data: dict[str, Any]) -> UpstreamError:
        code = data["error"].get("code")
        error = self.error_for(code if isinstance(code, int) else 500, orjson.dumps(data), None)
        return error if isinstance(error, UpstreamError) else UpstreamError(error.message)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _google_error(body: bytes) -> dict[str, Any]:
    data = _json(body)
    if isinstance(data, list) and data:
        data = data[0]  # streaming URLs wrap the error in a list
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _reasons(error: dict[str, Any]) -> set[str]:
    reasons = {str(d["reason"]) for d in _details(error) if "reason" in d}
    if isinstance(error.get("status"), str):
        reasons.add(error["status"])
    return reasons


def _retry_delay(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        match = _SECONDS.match(str(detail.get("retryDelay", "")))
        if match:
            return str(math.ceil(float(match.group(1))))
    return None
