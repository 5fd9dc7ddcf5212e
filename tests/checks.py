"""Assertions shared by the test modules: error shapes per dialect, and no leaks."""

from __future__ import annotations

from typing import Any

import httpx

from harness import MASTER_KEY, PROVIDER_KEYS

OPENAI_ERROR_KEYS = {"message", "type", "code", "param"}


def assert_no_leak(text: str | bytes) -> None:
    """No stack trace and no credential (provider keys, master key) in a response."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    assert "Traceback" not in text
    for secret in (*PROVIDER_KEYS, MASTER_KEY):
        assert secret not in text
        # Masked forms such as "sk-upstr*****2e8b" still disclose part of a key.
        assert secret[-8:] not in text
    assert "SECRET" not in text


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check an OpenAI-dialect error response and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id", "").startswith("req_")
    assert_no_leak(response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == OPENAI_ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return dict(error)


def anthropic_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check an Anthropic-dialect error response and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id", "").startswith("req_")
    assert_no_leak(response.text)
    body = response.json()
    assert body.get("type") == "error", body
    error = body["error"]
    assert set(error) >= {"type", "message"}, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def dialect_error(dialect: str, response: httpx.Response, status: int) -> dict[str, Any]:
    """``openai_error`` or ``anthropic_error``."""
    if dialect == "anthropic":
        return anthropic_error(response, status)
    return openai_error(response, status)


def sse_events(raw: bytes) -> list[bytes]:
    """Split an SSE body into its events (each with its blank line)."""
    events = []
    for part in raw.split(b"\n\n"):
        if part:
            events.append(part + b"\n\n")
    return events
