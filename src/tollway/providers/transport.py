"""Pooled keep-alive HTTP to upstreams (aiohttp: it measured fastest, see bench/).

Maps every network failure onto the error tree:

    connect refused / DNS failure   -> UpstreamUnavailable (503)
    connect or read timeout         -> UpstreamTimeout     (504)
    reset, truncated body, garbage  -> UpstreamError       (502)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from tollway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tollway.settings import Timeouts

USER_AGENT = "tollway/0.1"


def _network_error(provider: str, exc: BaseException) -> UpstreamError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"Timed out connecting to provider '{provider}'.")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"Provider '{provider}' did not answer in time.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(f"Could not connect to provider '{provider}'.")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(f"Provider '{provider}' closed the response before it was complete.")
    return UpstreamError(f"Connection to provider '{provider}' failed.")


class UpstreamResponse:
    """An upstream response whose body is read whole or chunk by chunk."""

    __slots__ = ("_provider", "_response", "status")

    def __init__(self, provider: str, response: aiohttp.ClientResponse) -> None:
        self._provider = provider
        self._response = response
        self.status = response.status

    @property
    def content_type(self) -> str:
        """The response's media type, lower-case, without parameters."""
        return self._response.content_type

    def header(self, name: str) -> str | None:
        """One response header."""
        return self._response.headers.get(name)

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.abort()
            raise _network_error(self._provider, exc) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; a silence longer than stream_idle is a timeout."""
        content = self._response.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.abort()
            raise _network_error(self._provider, exc) from None

    def release(self) -> None:
        """Return the connection to the pool (the body was read to the end)."""
        self._response.release()

    def abort(self) -> None:
        """Drop the connection so the upstream stops generating."""
        self._response.close()


class Transport:
    """One pooled HTTP client for one provider."""

    def __init__(self, provider: str, timeouts: Timeouts, max_connections: int) -> None:
        self._provider = provider
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._plain = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_read=timeouts.read
        )
        # Inside a stream, sock_read bounds each silence: the idle timeout.
        self._streaming = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_read=timeouts.stream_idle
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"user-agent": USER_AGENT},
                timeout=self._plain,
                auto_decompress=True,
                # One session serves every tenant: an upstream Set-Cookie must never be
                # replayed on someone else's request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, stream: bool
    ) -> UpstreamResponse:
        """POST ``body`` and return once the response headers have arrived."""
        try:
            response = await self._client().post(
                url,
                data=body,
                headers=headers,
                timeout=self._streaming if stream else self._plain,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _network_error(self._provider, exc) from None
        return UpstreamResponse(self._provider, response)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None
