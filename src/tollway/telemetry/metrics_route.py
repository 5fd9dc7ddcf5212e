"""``GET /metrics``: who may read it, and where it is served.

On the gateway's port by default, answering only the master key or an admin key (any
role) sent as ``Authorization: Bearer <key>``, compared in constant time as the
management API does (admin/deps.py); anything else is a 401 in the management API's
error shape. ``metrics.public`` drops the key. ``metrics.port`` serves it on a port of
its own instead: every worker listens there (``SO_REUSEPORT``) and whichever answers
shows every worker's values. The master key works even while the database is down;
an admin key then gets a 503.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from tollway.asgi import JSON_CONTENT_TYPE, RawHeaders, Receive, Scope, Send, new_request_id
from tollway.asgi import send_response as send_bytes
from tollway.auth.secrets import ServerKeys
from tollway.dialects.render import render_error
from tollway.errors import (
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    TollwayError,
    Unauthorized,
)
from tollway.settings import Dialect
from tollway.store import admin_keys
from tollway.store.db import Database
from tollway.store.ids import ADMIN_KEY_PREFIX
from tollway.telemetry.metrics_config import MetricsConfig
from tollway.telemetry.metrics_scrape import Exposition

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("tollway.telemetry")
PATH = "/metrics"
_SHUTDOWN_SECONDS = 2.0


def _bearer(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (None for any other header)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class MetricsEndpoint:
    """Checks the caller and answers with the exposition, on either port."""

    def __init__(
        self,
        exposition: Exposition,
        db: Database,
        server_keys: ServerKeys,
        master_key: str,
        config: MetricsConfig,
        host: str,
    ) -> None:
        self._exposition = exposition
        self._db = db
        self._keys = server_keys
        self._master = master_key.encode()
        self._config = config
        self._host = config.host or host
        self._server: web.Server | None = None
        self._listener: asyncio.Server | None = None

    @property
    def on_gateway_port(self) -> bool:
        """Whether the gateway's own port answers ``/metrics``."""
        return self._config.port is None

    async def authorize(self, authorization: str | None) -> None:
        """Return if the caller may read the metrics; raise Unauthorized otherwise."""
        if self._config.public:
            return
        key = _bearer(authorization)
        if key is None:
            raise Unauthorized(
                "/metrics needs the master key or an admin key as 'Authorization: Bearer <key>'."
            )
        if hmac.compare_digest(key.encode(), self._master):
            return
        if key.startswith(ADMIN_KEY_PREFIX):
            digest = self._keys.hash_key(key)
            try:
                async with self._db.reader() as session:
                    found = await admin_keys.by_hash(session, digest)
            except (SQLAlchemyError, OSError):
                log.warning("checking an admin key for /metrics failed", exc_info=True)
                raise ServiceUnavailable(
                    "Admin keys cannot be checked right now (the master key still works)."
                ) from None
            if found is not None and hmac.compare_digest(found.key_hash, digest):
                return
        raise Unauthorized("Not a valid master key or admin key for /metrics.")

    async def answer(
        self, method: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes, RawHeaders]:
        """Status, body and headers for one request to ``/metrics``."""
        ids = [(b"x-request-id", new_request_id().encode())]
        try:
            if method != "GET":
                raise MethodNotAllowed("Use GET for /metrics.", headers={"allow": "GET"})
            await self.authorize(headers.get("authorization"))
        except TollwayError as error:
            extra = [(k.encode(), v.encode()) for k, v in error.headers.items()]
            if isinstance(error, Unauthorized):
                extra.append((b"www-authenticate", b"Bearer"))
            return (
                error.status,
                render_error(Dialect.OPENAI, error),
                [JSON_CONTENT_TYPE, *ids, *extra],
            )
        body, content_type = await self._exposition.render(headers.get("accept"))
        headers_out = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
        return 200, body, [*headers_out, *ids]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: ``/metrics`` on the gateway's port."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, body, out = await self.answer(scope["method"], headers)
        await send_bytes(send, status, body, out)

    async def start(self) -> None:
        """Listen on ``metrics.port`` when one is set (in every worker)."""
        port = self._config.port
        if port is None:
            return
        from aiohttp import web  # the client library the providers already use

        self._server = web.Server(self._serve_aiohttp, access_log=None)
        try:
            self._listener = await asyncio.get_running_loop().create_server(
                self._server, self._host, port, reuse_port=True
            )
        except OSError as exc:
            # Metrics are not worth an outage of the gateway: say so loudly and serve on.
            log.error(
                "cannot listen for /metrics",
                extra={"fields": {"host": self._host, "port": port, "reason": str(exc)}},
            )
            self._server = None
            return
        log.info("metrics listening", extra={"fields": {"url": f"http://{self._host}:{port}"}})

    async def _serve_aiohttp(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        if request.path == PATH:
            headers = {name.lower(): value for name, value in request.headers.items()}
            status, body, out = await self.answer(request.method, headers)
        else:
            error = NotFound(f"Unknown route: {request.method} {request.path[:200]}.")
            status, body = error.status, render_error(Dialect.OPENAI, error)
            out = [JSON_CONTENT_TYPE, (b"x-request-id", new_request_id().encode())]
        fields = {name.decode("latin-1"): value.decode("latin-1") for name, value in out}
        return web.Response(status=status, body=body, headers=fields)

    async def aclose(self) -> None:
        """Stop listening on the metrics port."""
        listener, self._listener = self._listener, None
        server, self._server = self._server, None
        if listener is not None:
            listener.close()
        if server is not None:
            await server.shutdown(_SHUTDOWN_SECONDS)
        if listener is not None:
            await listener.wait_closed()
