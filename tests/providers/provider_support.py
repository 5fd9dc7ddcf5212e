"""Shared pieces for the provider tests: a scripted fake upstream on 127.0.0.1, recorded
fixtures, an AWS event-stream encoder and an independent SigV4 checker.

The fake runs on the test's own event loop (aiohttp.web), records every request it gets
and answers with what the test scripted: a whole body, or a stream written piece by piece
(so tests can split events across network reads).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from tollway.config import ProviderConfig, Timeouts
from tollway.dialects.endpoints import Endpoint
from tollway.plugins.registry import Plugins
from tollway.providers.base import Provider, UpstreamCall

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """A recorded fixture, byte for byte."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    """A recorded JSON fixture."""
    return orjson.loads(fixture_bytes(name))


def build(kind: str, name: str = "up", **config: Any) -> Provider:
    """A provider of ``kind`` built from a validated ProviderConfig."""
    return Plugins().provider(kind)(name, ProviderConfig(type=kind, **config), Timeouts())


def call(
    endpoint: Endpoint,
    body: Any = None,
    *,
    model: str = "m",
    stream: bool = False,
    credential: str | None = None,
) -> UpstreamCall:
    """One upstream call with a JSON body."""
    payload = orjson.dumps(body if body is not None else {})
    return UpstreamCall(endpoint, payload, stream, {}, credential, model)


@dataclass
class Reply:
    """What the fake answers: ``body`` whole, or ``chunks`` written one by one."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str  # the raw path and query, exactly as sent
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The request body as JSON."""
        return orjson.loads(self.body)


class FakeUpstream:
    """Answers scripted replies in order and records the requests."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these."""
        self.replies.extend(replies)

    async def start(self) -> FakeUpstream:
        """Listen on a free 127.0.0.1 port."""
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.seen.append(Seen(request.method, request.raw_path, headers, await request.read()))
        reply = self.replies.pop(0) if self.replies else Reply(500, b'{"message": "unscripted"}')
        if reply.chunks is None:
            return web.Response(
                status=reply.status,
                body=reply.body,
                headers={"content-type": reply.content_type, **reply.headers},
            )
        response = web.StreamResponse(
            status=reply.status, headers={"content-type": reply.content_type, **reply.headers}
        )
        await response.prepare(request)
        for chunk in reply.chunks:
            await response.write(chunk)
        await response.write_eof()
        return response


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes (to cut events across reads)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# ------------------------------------------------------------------ AWS event stream


def _header(name: str, value: str) -> bytes:
    # name length, name, type 7 (string), value length, value
    size = struct.pack(">H", len(value))
    return bytes([len(name)]) + name.encode() + b"\x07" + size + value.encode()


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only), CRCs included.

    Layout: total length, headers length, prelude CRC, headers, payload, message CRC
    (https://smithy.io/2.0/aws/amazon-eventstream.html).
    """
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def converse_event(event_type: str, payload: Any) -> bytes:
    """One ConverseStream event message."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return event_message(headers, orjson.dumps(payload))


def converse_exception(exception_type: str, message: str) -> bytes:
    """One ConverseStream exception message."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return event_message(headers, orjson.dumps({"message": message}))


def recorded_converse_stream(name: str) -> bytes:
    """A recorded stream fixture (a list of [eventType, payload]) as wire bytes."""
    return b"".join(converse_event(kind, payload) for kind, payload in fixture_json(name))


# ------------------------------------------------------------------ SigV4, checked by hand

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check_sigv4(seen: Seen, access_key: str, secret_key: str, region: str) -> list[str]:
    """Verify a request's SigV4 signature as AWS would; returns the signed header names.

    AWS builds the canonical URI by URI-encoding the path it *received* (each segment
    once more, except for S3), so what was signed must be what was sent.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
    """
    match = _AUTHORIZATION.fullmatch(seen.headers["authorization"])
    assert match, seen.headers["authorization"]
    assert match["key"] == access_key
    assert match["region"] == region
    assert match["service"] == "bedrock"
    amz_date = seen.headers["x-amz-date"]
    assert amz_date.startswith(match["date"])
    path, _, query = seen.path.partition("?")
    names = match["signed"].split(";")
    canonical_headers = "".join(f"{n}:{' '.join(seen.headers[n].split())}\n" for n in names)
    canonical = "\n".join(
        [
            seen.method,
            quote(path, safe="/~"),
            query,
            canonical_headers,
            match["signed"],
            hashlib.sha256(seen.body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), match["date"])
    for part in (region, "bedrock", "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert match["signature"] == expected, "the signature does not match the request sent"
    return names
