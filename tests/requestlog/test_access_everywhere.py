"""Every HTTP request gets one access-log line: the management API, health checks, the
model list and unknown routes too (the proxy endpoints log their own), with the request
id the client got, and never the query string or a key."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from requestlog_support import new_key

from harness import MASTER_KEY, GatewayServer
from tollway.asgi import Message, Receive, Scope, Send
from tollway.telemetry.access import AccessLog
from tollway.telemetry.logs import ACCESS_LOGGER, JsonFormatter

SECRET_PERSON = "person-3f9e@example.com"


class Lines(logging.Handler):
    """The access log's records, as the gateway thread emits them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def of(self, request_id: str, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The lines of one request (written as its response ends), as JSON."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [
                    r
                    for r in self.records
                    if getattr(r, "fields", {}).get("request_id") == request_id
                ]
            if found:
                time.sleep(0.05)  # a second line would be a bug: give it time to show
                with self._lock:
                    found = [
                        r
                        for r in self.records
                        if getattr(r, "fields", {}).get("request_id") == request_id
                    ]
                return [json.loads(JsonFormatter().format(r)) for r in found]
            time.sleep(0.01)
        raise AssertionError(f"no access log line for {request_id}")


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, previous = Lines(), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/v1/keys", MASTER, 200),
        ("GET", f"/api/v1/requests?metadata.user={SECRET_PERSON}", MASTER, 200),
        ("GET", "/api/v1/keys", {}, 401),
        ("GET", "/api/v1/no-such-route", MASTER, 404),
        ("POST", "/api/v1/keys", MASTER, 422),
        ("GET", "/health/live", {}, 200),
        ("GET", "/api/v1/openapi.json", {}, 200),
        ("GET", "/v1/models", MASTER, 200),
        ("GET", "/v1/models/no-such-model", MASTER, 404),
        ("POST", "/v1/no-such-endpoint", MASTER, 404),
        ("GET", "/ui-not-here", {}, 404),
    ],
)
def test_one_line_per_request(
    rlgw: GatewayServer, lines: Lines, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = httpx.request(method, rlgw.url + path, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    [entry] = lines.of(response.headers["x-request-id"])
    assert entry["logger"] == ACCESS_LOGGER and entry["msg"] == "request"
    assert entry["method"] == method
    assert entry["path"] == path.split("?")[0]
    assert entry["status"] == status
    assert entry["latency_ms"] >= 0
    text = json.dumps(entry)
    assert SECRET_PERSON not in text and MASTER_KEY not in text
    # The management API's guarded routes name their caller.
    guarded = path.startswith(("/api/v1/keys", "/api/v1/requests")) and status != 401
    assert entry.get("actor") == ("master" if guarded else None)


def test_a_virtual_key_listing_models_is_logged(
    rlgw: GatewayServer, lines: Lines, api: httpx.Client
) -> None:
    key = new_key(api)
    response = httpx.get(
        rlgw.url + "/v1/models", headers={"authorization": f"Bearer {key['key']}"}, timeout=10
    )
    assert response.status_code == 200
    [entry] = lines.of(response.headers["x-request-id"])
    assert entry["status"] == 200 and key["key"] not in json.dumps(entry)


async def test_off_when_the_access_log_is_off_and_499_when_nothing_was_sent() -> None:
    logged: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record)

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # the client left before an answer

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    logger = logging.getLogger(ACCESS_LOGGER)
    handler, previous = Keep(), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        scope = {"type": "http", "method": "GET", "path": "/api/v1/keys", "headers": []}
        await AccessLog(silent, enabled=False)(scope, receive, send)
        assert logged == []
        await AccessLog(silent)(scope, receive, send)
        [record] = logged
        assert getattr(record, "fields", {})["status"] == 499
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
