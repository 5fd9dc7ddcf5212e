"""Render a TollwayError in the dialect of the endpoint the client called.

OpenAI: ``{"error": {"message", "type", "code", "param"}}``
(https://platform.openai.com/docs/guides/error-codes).
Anthropic: ``{"type": "error", "error": {"type", "message"}}``
(https://docs.anthropic.com/en/api/errors).
"""

from __future__ import annotations

import secrets

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import TollwayError
from tollway.settings import Dialect

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def _openai_error(error: TollwayError) -> dict[str, object]:
    kind = _OPENAI_TYPES.get(error.status)
    if kind is None:
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
    return {"message": error.message, "type": kind, "code": error.code, "param": error.param}


def _anthropic_error(error: TollwayError) -> dict[str, object]:
    kind = _ANTHROPIC_TYPES.get(error.status)
    if kind is None:
        kind = "api_error" if error.status >= 500 else "invalid_request_error"
    return {"type": kind, "message": error.message}


def request_id_headers(dialect: Dialect, request_id: str) -> list[tuple[bytes, bytes]]:
    """The headers naming a request: ``x-request-id`` everywhere, and ``request-id``
    where the Anthropic SDKs read it (``message._request_id``)."""
    value = request_id.encode()
    if dialect is Dialect.ANTHROPIC:
        return [(b"x-request-id", value), (b"request-id", value)]
    return [(b"x-request-id", value)]


def render_error(dialect: Dialect, error: TollwayError) -> bytes:
    """The JSON body of an error response."""
    if dialect is Dialect.ANTHROPIC:
        return orjson.dumps({"type": "error", "error": _anthropic_error(error)})
    return orjson.dumps({"error": _openai_error(error)})


def render_stream_error(dialect: Dialect, error: TollwayError) -> bytes:
    """A well-formed SSE event reporting an error after a stream has started.

    The OpenAI SDKs raise on a ``data:`` event whose JSON has an ``error`` key; the
    Anthropic SDKs raise on an ``event: error``.
    """
    if dialect is Dialect.ANTHROPIC:
        body = orjson.dumps({"type": "error", "error": _anthropic_error(error)})
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + orjson.dumps({"error": _openai_error(error)}) + b"\n\n"


def render_stream_failure(endpoint: Endpoint, error: TollwayError) -> bytes:
    """The events that end a stream after a failure: for the Responses API a
    ``response.failed`` (what Codex reads) then the error event the OpenAI SDKs raise on;
    else the dialect's error event."""
    if endpoint is not Endpoint.RESPONSES:
        return render_stream_error(endpoint.dialect, error)
    response: dict[str, object] = {
        "id": f"resp_{secrets.token_hex(16)}",
        "object": "response",
        "status": "failed",
        "error": {"code": error.code, "message": error.message},
        "output": [],
        "usage": None,
    }
    data = {"type": "response.failed", "sequence_number": 0, "response": response}
    failed = b"event: response.failed\ndata: " + orjson.dumps(data) + b"\n\n"
    return failed + render_stream_error(Dialect.OPENAI, error)
