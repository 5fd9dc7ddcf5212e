"""The last line at the ASGI edge: an exception nothing else handled still gets an
answer in the caller's dialect, with a request id, and its traceback in the log.

The proxy path handles its own failures (``pipeline.py``) because it must also record
the call; this wraps everything else (the management API, health, the model list).
Without it an exception would reach the HTTP server, which answers with a plain-text 500
and drops the connection without saying so, resetting the client's next request.
"""

from __future__ import annotations

import logging

from tollway.asgi import (
    JSON_CONTENT_TYPE,
    ASGIApp,
    Receive,
    ResponseState,
    Scope,
    Send,
    new_request_id,
    send_response,
    tracking,
)
from tollway.dialects.render import render_error, request_id_headers
from tollway.errors import InternalError
from tollway.settings import Dialect

log = logging.getLogger("tollway.edge")


def dialect_of(scope: Scope) -> Dialect:
    """The dialect a caller speaks: Anthropic's paths or its version header, else OpenAI."""
    path: str = scope.get("path", "")
    if path.startswith("/v1/messages"):
        return Dialect.ANTHROPIC
    if any(name == b"anthropic-version" for name, _ in scope.get("headers", ())):
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


class Edge:
    """Wraps an ASGI app so that no exception leaves it unanswered."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; render what escapes it."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = ResponseState()
        try:
            await self._app(scope, receive, tracking(send, state))
        except Exception:  # the edge: answer, log, keep the connection sound
            request_id = new_request_id()
            log.exception(
                "unexpected error",
                extra={"fields": {"request_id": request_id, "path": scope.get("path")}},
            )
            if not state.started:
                error = InternalError(f"The gateway failed unexpectedly (request {request_id}).")
                dialect = dialect_of(scope)
                headers = [JSON_CONTENT_TYPE, *request_id_headers(dialect, request_id)]
                await send_response(send, 500, render_error(dialect, error), headers)
            elif not state.done:
                await send({"type": "http.response.body", "body": b""})
