"""Bounds at the edge: sizes, numbers, time, and the catch-all for the unexpected.

Every field a client controls is bounded before anything is journaled, reserved or
forwarded, and answered in the endpoint's dialect naming the field; slow or oversized
requests get 408 / 431; an exception nothing else handles is a JSON 500 with a request
id, and the connection stays usable.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks import dialect_error, openai_error
from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer, gateway_settings

OPENAI_CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "gpt-test", "prompt": "x"}
RESPONSE = {"model": "gpt-test", "input": "x"}
ANTHROPIC = {"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]}

# path, fields, the field the error must name
OUT_OF_BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {**OPENAI_CHAT, "max_tokens": 5_000_000_000_000}, "max_tokens"),
    ("/v1/chat/completions", {**OPENAI_CHAT, "max_completion_tokens": 2**64},
     "max_completion_tokens"),
    ("/v1/chat/completions", {**OPENAI_CHAT, "n": 129}, "n"),
    ("/v1/chat/completions", {**OPENAI_CHAT, "stream_options": [1]}, "stream_options"),
    ("/v1/chat/completions", {**OPENAI_CHAT, "top_logprobs": 21}, "top_logprobs"),
    ("/v1/completions", {**COMPLETION, "stream_options": [1]}, "stream_options"),
    ("/v1/completions", {**COMPLETION, "best_of": 21}, "best_of"),
    ("/v1/completions", {**COMPLETION, "max_tokens": 2**63}, "max_tokens"),
    ("/v1/embeddings", {"model": "embed-test", "input": "x", "dimensions": 10**9}, "dimensions"),
    ("/v1/responses", {**RESPONSE, "max_output_tokens": 10**12}, "max_output_tokens"),
    ("/v1/responses", {**RESPONSE, "stream_options": "yes"}, "stream_options"),
    ("/v1/messages", {**ANTHROPIC, "max_tokens": 10**13}, "max_tokens"),
    ("/v1/messages", {**ANTHROPIC, "max_tokens": 5, "top_k": 10**12}, "top_k"),
]  # fmt: skip


@pytest.fixture
def slow_body_gateway(fake_server: FakeUpstream, tmp_path: Path) -> Iterator[GatewayServer]:
    """A gateway that gives clients one second to send their body."""
    server = GatewayServer(gateway_settings(fake_server, tmp_path, body_timeout=1.0)).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("path", "body", "field"), OUT_OF_BOUNDS)
def test_out_of_bounds_numbers_are_400_naming_the_field(
    http: httpx.Client,
    fake: FakeUpstream,
    auth: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    dialect = "anthropic" if path.startswith("/v1/messages") else "openai"
    error = dialect_error(dialect, http.post(path, json=body, headers=auth), 400)
    assert field in error["message"]
    if dialect == "openai":
        assert error["param"] == field
    assert fake.requests == []


def test_deeply_nested_body_is_400(http: httpx.Client, auth: dict[str, str]) -> None:
    nested: Any = "x"
    for _ in range(300):
        nested = [nested]
    body = {**OPENAI_CHAT, "messages": [{"role": "user", "content": nested}]}
    openai_error(http.post("/v1/chat/completions", json=body, headers=auth), 400)


def test_oversized_headers_are_431(http: httpx.Client, auth: dict[str, str]) -> None:
    headers = {**auth, "x-padding": "a" * 70_000}
    error = openai_error(http.post("/v1/chat/completions", json=OPENAI_CHAT, headers=headers), 431)
    assert error["code"] == "headers_too_large"


def test_a_body_that_never_finishes_is_408(slow_body_gateway: GatewayServer) -> None:
    with socket.create_connection(("127.0.0.1", slow_body_gateway.port), timeout=10) as sock:
        head = (
            "POST /v1/messages HTTP/1.1\r\nHost: gw\r\n"
            f"x-api-key: {MASTER_KEY}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "claude-test", ')
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"type":"error"' in answer and b"x-request-id: req_" in answer


def test_unexpected_failure_is_a_json_500_and_the_connection_survives(
    fake_server: FakeUpstream, tmp_path: Path
) -> None:
    """A broken table makes the management API fail in a way no handler expects."""
    server = GatewayServer(gateway_settings(fake_server, tmp_path)).start()
    try:
        db = sqlite3.connect(tmp_path / "tollway.db", isolation_level=None)
        db.execute("ALTER TABLE admin_keys RENAME TO admin_keys_away")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            headers = {"authorization": f"Bearer {MASTER_KEY}"}
            broken = client.get("/api/v1/admin-keys", headers=headers)
            error = openai_error(broken, 500)
            assert error["code"] == "internal_error"
            assert "Traceback" not in broken.text and "admin_keys" not in broken.text
            # The same keep-alive connection answers the next request normally.
            assert client.get("/health/live").status_code == 200
        db.execute("ALTER TABLE admin_keys_away RENAME TO admin_keys")
        db.close()
    finally:
        server.stop()
