"""Pooled keep-alive HTTP to upstreams (aiohttp: it measured fastest, see bench/).

Maps every network failure onto the error tree:

    no pooled connection free in time -> UpstreamBusy        (503, not the upstream's fault)
    connect refused / DNS failure     -> UpstreamUnavailable (503)
    connect or read timeout           -> UpstreamTimeout     (504)
    reset, truncated body, garbage    -> UpstreamError       (502)
    body over max_response_bytes      -> UpstreamError       (502, upstream_response_too_large)

Connections are counted here, not by aiohttp: its ``connect`` timeout covers both the
wait for a pooled connection and the TCP connect, and it raises the same exception for
either, so a gateway busy with slow streams would look like a dead upstream and open its
circuit. Each Transport holds ``max_connections`` slots; a request takes one before it
goes out (waiting at most ``timeouts.pool``) and gives it back exactly once, when its
response is read to the end, released or aborted, or the request fails. aiohttp's own
limit is lifted, so it never waits, and its ``connect`` timeout bounds only DNS, TCP and
TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from tollway.config import Timeouts
from tollway.errors import UpstreamBusy, UpstreamError, UpstreamTimeout, UpstreamUnavailable

USER_AGENT = "tollway/0.1"
RESPONSE_TOO_LARGE = "upstream_response_too_large"


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


def _too_large(provider: str, limit: int) -> UpstreamError:
    return UpstreamError(
        f"Provider '{provider}' answered with more than {limit:,} bytes, the gateway's "
        "limit (max_response_bytes).",
        code=RESPONSE_TOO_LARGE,
    )


class UpstreamResponse:
    """An upstream response whose body is read whole or chunk by chunk.

    It holds one of its Transport's connection slots until the body has been read to the
    end, or ``release()`` or ``abort()`` is called; whichever comes first frees it.
    """

    __slots__ = ("_limit", "_provider", "_response", "_slot", "status")

    def __init__(
        self,
        provider: str,
        response: aiohttp.ClientResponse,
        slot: asyncio.Semaphore | None = None,
        limit: int | None = None,
    ) -> None:
        self._provider = provider
        self._response = response
        self._slot = slot
        self._limit = limit
        self.status = response.status

    @property
    def content_type(self) -> str:
        """The response's media type, lower-case, without parameters."""
        return self._response.content_type

    def header(self, name: str) -> str | None:
        """One response header."""
        return self._response.headers.get(name)

    async def read(self) -> bytes:
        """The whole body (at most max_response_bytes); the connection goes back to the
        pool. A body over the limit is not read further: the connection is dropped."""
        response, limit = self._response, self._limit
        declared = response.content_length
        # A declared length is the encoded size; only an unencoded one is known too big.
        encoded = "content-encoding" in response.headers
        if limit is not None and declared is not None and declared > limit and not encoded:
            self.abort()
            raise _too_large(self._provider, limit)
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await response.content.readany():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise _too_large(self._provider, limit)
                parts.append(chunk)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.abort()
            raise _network_error(self._provider, exc) from None
        except BaseException:
            self.abort()
            raise
        self.release()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; a silence longer than stream_idle is a timeout.

        Stopping early (closing the iterator, or a cancellation) drops the connection."""
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.abort()
            raise _network_error(self._provider, exc) from None
        except BaseException:
            self.abort()
            raise
        self.release()

    def release(self) -> None:
        """Return the connection to the pool (aiohttp closes it if the body was not read to
        the end)."""
        self._response.release()
        self._free()

    def abort(self) -> None:
        """Drop the connection so the upstream stops generating."""
        self._response.close()
        self._free()

    def _free(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def __del__(self) -> None:
        # A response dropped without release() or abort() (a bug elsewhere) must not
        # shrink the pool for good; aiohttp closes its connection in its own __del__.
        self._free()


class Transport:
    """One pooled HTTP client for one provider."""

    def __init__(
        self,
        provider: str,
        timeouts: Timeouts,
        max_connections: int,
        max_response_bytes: int | None = None,
    ) -> None:
        self._provider = provider
        self._timeouts = timeouts
        self._max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None
        # The connector never queues (its limit is lifted), so ``connect`` bounds DNS,
        # TCP and TLS only; ``sock_connect`` bounds each TCP connect attempt.
        self._plain = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.connect,
            sock_connect=timeouts.connect,
            sock_read=timeouts.read,
        )
        # Inside a stream, sock_read bounds each silence: the idle timeout.
        self._streaming = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.connect,
            sock_connect=timeouts.connect,
            sock_read=timeouts.stream_idle,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # limit=0: the slots above do the counting (see the module docstring).
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
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

    async def _take_slot(self) -> None:
        slots = self._slots
        if not slots.locked():
            await slots.acquire()  # a free slot: returns without suspending
            return
        wait = self._timeouts.pool
        try:
            async with asyncio.timeout(wait):
                await slots.acquire()
        except TimeoutError:
            raise UpstreamBusy(
                f"All {self._max_connections} connections to provider '{self._provider}' "
                f"stayed busy for {wait:g} s; try again shortly."
            ) from None

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, stream: bool
    ) -> UpstreamResponse:
        """POST ``body`` and return once the response headers have arrived."""
        await self._take_slot()
        try:
            response = await self._client().post(
                url,
                data=body,
                headers=headers,
                timeout=self._streaming if stream else self._plain,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._slots.release()
            raise _network_error(self._provider, exc) from None
        except BaseException:
            self._slots.release()
            raise
        return UpstreamResponse(self._provider, response, self._slots, self.max_response_bytes)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None
