"""The access-log line of every HTTP request the proxy path does not log itself: the
management API, health checks, the model list and unknown routes.

One line per request on the ``tollway.access`` logger, like a proxied call's
(``Pipeline.log``): request id, method, path, status, latency, and for the management
API the caller (``master`` or ``admin_key:<id>``). Never the query string (its filters
may name people) nor any header. A response that never started (the client left) is
logged as 499.
"""

from __future__ import annotations

import logging
import time

from tollway.asgi import ASGIApp, Message, Receive, Scope, Send
from tollway.telemetry.logs import ACCESS_LOGGER

CLIENT_CLOSED = 499
MAX_PATH_CHARS = 512


class AccessLog:
    """Wraps an ASGI app with one access-log line per HTTP request."""

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self._app = app
        self._enabled = enabled
        self._log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app and log how the request went."""
        if scope["type"] != "http" or not self._enabled or not self._log.isEnabledFor(logging.INFO):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, object] = {"status": CLIENT_CLOSED}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        seen["request_id"] = value.decode("latin-1")
            await send(message)

        try:
            await self._app(scope, receive, watched)
        finally:
            fields = {
                "request_id": seen.get("request_id"),
                "method": scope.get("method"),
                "path": str(scope.get("path", ""))[:MAX_PATH_CHARS],
                "status": seen["status"],
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            # The management API's guard leaves the caller in the request's state.
            admin = (scope.get("state") or {}).get("admin")
            if admin is not None:
                fields["actor"] = getattr(admin, "actor", None)
            self._log.info("request", extra={"fields": fields})
