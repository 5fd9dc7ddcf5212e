"""AWS Bedrock's Converse API, SigV4-signed.

    POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse
    POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse-stream

Auth: every request is signed with Signature Version 4 (service ``bedrock``) by
botocore, using ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``
from the config, or botocore's default credential chain (environment, shared files,
instance roles) when none are configured. A configured ``api_key`` (a Bedrock API key)
is sent as a bearer token instead, unsigned.

The model id is one escaped path segment (ARNs contain ``/``). What is signed is the
URL exactly as the HTTP client will send it: yarl, under aiohttp, un-escapes ``%3A`` to
``:``, and AWS derives its canonical path from the path it receives.

Streams are AWS's binary event stream (``application/vnd.amazon.eventstream``), decoded
with botocore into synthetic SSE events ``event: <eventType>`` / ``data: <json>``
(messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop,
metadata) for the translator and the meter. Exception messages inside the stream end
it with an error.

Usage is read by ``metering.usage.from_converse``; in streams the metadata event (the
last one) carries it. Errors are ``{"message": ...}`` with the
kind in ``x-amzn-ErrorType``.

https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html
https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson
from yarl import URL

from tollway.config import ProviderConfig, Timeouts
from tollway.dialects.endpoints import Endpoint
from tollway.errors import TollwayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tollway.metering.stream_meter import StreamMeter, event_data
from tollway.metering.usage import Usage, from_converse, from_json
from tollway.providers.base import Provider, UpstreamCall
from tollway.providers.transport import UpstreamResponse
from tollway.settings import ConfigError, Dialect
from tollway.sse import event_too_large

EVENT_STREAM = "application/vnd.amazon.eventstream"
SIGNING_NAME = "bedrock"
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_RATE_LIMITED = frozenset({"throttlingException"})
_UNAVAILABLE = frozenset({"serviceUnavailableException", "modelNotReadyException"})
# An event-stream message: a 12-byte prelude (lengths and their CRC), headers, payload,
# and a 4-byte CRC of the whole.
_PRELUDE = 12
_SMALLEST_MESSAGE = _PRELUDE + 4


class MalformedStream(Exception):
    """Bytes that are not an AWS event stream."""


class MessageFrames:
    """Whole event-stream messages out of network chunks, none over ``max_bytes``.

    A message starts with a prelude: its total length, its headers' length (4 bytes
    each, big-endian) and their CRC32, so its size is known, and checked, before the
    rest arrives (https://smithy.io/2.0/aws/amazon-eventstream.html).
    """

    __slots__ = ("_buffer", "_failed", "_max")

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        # A bad or oversized message was seen; raised once the messages before it are out.
        self._failed: Exception | None = None

    def rest(self) -> int:
        """At the end of the stream: the bytes of a message it cut short (raises the
        failure not yet reported, if any)."""
        if self._failed is not None:
            raise self._failed
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Messages completed by ``chunk``, in order; a bad prelude or a message over
        ``max_bytes`` raises, on this call or (after complete messages) on the next."""
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        buffer += chunk
        frames: list[bytes] = []
        start = 0
        while len(buffer) - start >= _PRELUDE:
            total = int.from_bytes(buffer[start : start + 4], "big")
            crc = int.from_bytes(buffer[start + 8 : start + _PRELUDE], "big")
            if zlib.crc32(buffer[start : start + 8]) != crc or total < _SMALLEST_MESSAGE:
                self._failed = MalformedStream("an event-stream message with a bad prelude")
            elif total > self._max:
                self._failed = event_too_large(self._max)
            if self._failed is not None:
                self._buffer = bytearray()
                if not frames:
                    raise self._failed
                return frames
            if len(buffer) - start < total:
                break
            frames.append(bytes(buffer[start : start + total]))
            start += total
        del buffer[:start]  # cheap: CPython moves a bytearray's start, not its bytes
        return frames


class BedrockStreamMeter(StreamMeter):
    """Usage from the ``metadata`` event, which is also the stream's last."""

    def observe(self, event: bytes) -> bytes | None:
        """Account for one synthetic SSE event; it passes unchanged."""
        self.retain(event)
        if event.startswith(b"event: metadata\n"):
            try:
                data = orjson.loads(event_data(event))
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                self.usage = from_converse(data.get("usage"))
            self.finished = True
        return event


class BedrockProvider(Provider):
    """SigV4-signed Converse calls; the model id is part of the URL."""

    dialect = Dialect.BEDROCK
    endpoints = frozenset({Endpoint.CONVERSE})
    price_provider_id = "aws"
    default_base_url = ""  # derived from the region
    stream_content_types = frozenset({EVENT_STREAM})

    def __init__(self, name: str, config: ProviderConfig, default_timeouts: Timeouts) -> None:
        if not config.region:
            raise ConfigError(
                f"providers.{name}.region: Bedrock needs an AWS region, e.g. us-east-1"
            )
        if bool(config.aws_access_key_id) != bool(config.aws_secret_access_key):
            raise ConfigError(
                f"providers.{name}: set both aws_access_key_id and aws_secret_access_key "
                "(or neither, to use the default AWS credential chain)"
            )
        super().__init__(name, config, default_timeouts)
        self.region = config.region
        if not config.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self._credentials: Any = None
        if config.aws_access_key_id and config.aws_secret_access_key:
            token = config.aws_session_token
            from botocore.credentials import Credentials  # type: ignore[import-untyped]

            self._credentials = Credentials(
                config.aws_access_key_id,
                config.aws_secret_access_key.get_secret_value(),
                token.get_secret_value() if token else None,
            )
        self._chain: Any = None

    @property
    def price_api_url(self) -> None:
        """None: whatever the endpoint (a VPC endpoint, a proxy), prices are AWS's."""
        return None

    def url(self, call: UpstreamCall) -> str:
        """The model's Converse URL, exactly as it goes on the wire (and is signed)."""
        operation = "converse-stream" if call.stream else "converse"
        raw = f"{self.base_url}/model/{quote(call.model, safe='')}/{operation}"
        return str(URL(raw))

    def headers(self, call: UpstreamCall) -> dict[str, str]:
        """Content type, plus a bearer token when a Bedrock API key is configured."""
        headers = {"content-type": "application/json"}
        key = self.api_key(call)
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        """Sign the request with SigV4 (unless it carries an API key) and send it."""
        url, headers = self.url(call), self.headers(call)
        if "authorization" not in headers:
            headers = self.sign(url, headers, call.body, await self._frozen_credentials())
        headers = {**call.trace_headers, **headers}  # never over a signed header
        return await self._transport.post(url, headers, call.body, stream=call.stream)

    def sign(
        self, url: str, headers: dict[str, str], body: bytes, credentials: Any
    ) -> dict[str, str]:
        """``headers`` plus x-amz-date, the session token and the SigV4 authorization."""
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(credentials, SIGNING_NAME, self.region).add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}

    async def _frozen_credentials(self) -> Any:
        if self._credentials is not None:
            return self._credentials
        if self._chain is None:
            # Resolving the chain may read files or call the instance metadata service.
            from botocore.session import Session  # type: ignore[import-untyped]

            self._chain = await asyncio.to_thread(lambda: Session().get_credentials())
            if self._chain is None:
                raise UpstreamError(
                    f"Provider '{self.name}' has no AWS credentials: set aws_access_key_id "
                    "and aws_secret_access_key in its config, or configure the AWS "
                    "credential chain (environment, ~/.aws, instance role)."
                )
        # Temporary credentials may refresh, which can block: keep it off the loop.
        return await asyncio.to_thread(self._chain.get_frozen_credentials)

    def usage_from_body(self, body: bytes) -> Usage | None:
        """Usage from a Converse response."""
        return from_json(body, "usage", from_converse)

    def stream_meter(self, endpoint: Endpoint, strip_usage: bool) -> StreamMeter:
        """Reads usage from the stream's ``metadata`` event."""
        return BedrockStreamMeter(endpoint, strip_usage)

    async def stream_events(self, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        """Binary event-stream messages as synthetic SSE events."""
        from botocore.eventstream import (  # type: ignore[import-untyped]
            EventStreamBuffer,
            ParserError,
        )

        frames = MessageFrames(self.max_event_bytes)
        decoder = EventStreamBuffer()
        try:
            async for chunk in upstream.chunks():
                for frame in frames.feed(chunk):
                    # One whole message at a time: botocore's buffer copies all it holds
                    # on every add, which is quadratic for a big message in many chunks.
                    decoder.add_data(frame)
                    for message in decoder:
                        yield self._event(message.headers, message.payload)
            cut = frames.rest()
        except (ParserError, MalformedStream):
            raise UpstreamError(f"Provider '{self.name}' sent a malformed event stream.") from None
        if cut:
            raise UpstreamError("The provider's stream ended in the middle of an event.")

    def _event(self, headers: dict[str, Any], payload: bytes) -> bytes:
        kind = headers.get(":message-type")
        if kind == "event":
            if b"\n" in payload or b"\r" in payload:
                try:
                    payload = orjson.dumps(orjson.loads(payload))  # one data: line
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        f"Provider '{self.name}' sent an event that is not JSON."
                    ) from None
            name = str(headers.get(":event-type", "unknown"))
            return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"
        if kind == "exception":
            raise self._stream_exception(str(headers.get(":exception-type", "")), payload)
        message = self.redact(str(headers.get(":error-message", "unknown error")))
        raise UpstreamError(f"Provider '{self.name}' failed mid-stream: {message}")

    def _stream_exception(self, kind: str, payload: bytes) -> UpstreamError:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        detail = data.get("message") if isinstance(data, dict) else None
        message = f"Provider '{self.name}' failed mid-stream ({kind or 'unknown'})"
        message += f": {self.redact(str(detail))}" if detail else "."
        if kind in _RATE_LIMITED:
            return UpstreamUnavailable(message, code="upstream_rate_limited")
        if kind in _UNAVAILABLE:
            return UpstreamUnavailable(message)
        return UpstreamError(message)

    def error_for(
        self, status: int, body: bytes, retry_after: str | None, call: UpstreamCall | None = None
    ) -> TollwayError:
        """The shared mapping, plus 408 (ModelTimeoutException) as a timeout."""
        if status == 408:
            return UpstreamTimeout(f"Provider '{self.name}' timed out running the model.")
        return super().error_for(status, body, retry_after, call)

    def redact(self, text: str, call: UpstreamCall | None = None) -> str:
        """The shared redaction, plus AWS key ids, the secret key and the session token."""
        config = self.config
        for secret in (config.aws_secret_access_key, config.aws_session_token):
            if secret is not None:
                text = text.replace(secret.get_secret_value(), "[redacted]")
        if config.aws_access_key_id:
            text = text.replace(config.aws_access_key_id, "[redacted]")
        return _AWS_KEY_ID.sub("[redacted]", super().redact(text, call))
