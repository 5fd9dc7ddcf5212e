"""The access log: one structured JSON line per proxied request, never a key or a body."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fake_upstream import TEXT, Fail, FakeUpstream, SlowEvents
from harness import CLAUDE, CLAUDE_UPSTREAM, GPT, GPT_UPSTREAM, MASTER_KEY, PROVIDER_KEYS
from tollway.telemetry.logs import ACCESS_LOGGER, JsonFormatter

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
PROMPT = "a confidential prompt 3e9d"


class Collector(logging.Handler):
    """Keeps the records the gateway thread emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def wait_for(self, request_id: str, timeout: float = 3.0) -> logging.LogRecord:
        """The access record of ``request_id`` (it is written after the response)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for record in self.records:
                    if fields(record).get("request_id") == request_id:
                        return record
            time.sleep(0.01)
        raise AssertionError(f"no access log line for {request_id}")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, "fields", None)
    return value if isinstance(value, dict) else {}


@pytest.fixture
def access_log() -> Iterator[Collector]:
    logger = logging.getLogger(ACCESS_LOGGER)
    collector = Collector()
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(collector)
    yield collector
    logger.removeHandler(collector)
    logger.setLevel(previous)


def as_json_line(record: logging.LogRecord) -> dict[str, Any]:
    """Format the record as the gateway does on stderr; it must be one JSON line."""
    line = JsonFormatter().format(record)
    assert "\n" not in line
    for secret in (*PROVIDER_KEYS, MASTER_KEY):
        assert secret not in line
    assert PROMPT not in line
    assert TEXT not in line
    entry: dict[str, Any] = json.loads(line)
    assert entry["logger"] == ACCESS_LOGGER
    assert entry["level"] == "info"
    return entry


def chat(http: httpx.Client, **changes: Any) -> httpx.Response:
    body = {"model": GPT, "messages": [{"role": "user", "content": PROMPT}], **changes}
    return http.post("/v1/chat/completions", json=body, headers=AUTH)


def test_one_line_per_call(http: httpx.Client, fake: FakeUpstream, access_log: Collector) -> None:
    response = chat(http)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    entry = as_json_line(access_log.wait_for(request_id))
    assert entry["request_id"] == request_id
    assert entry["model"] == GPT
    assert entry["provider"] == "oa"
    assert entry["upstream_model"] == GPT_UPSTREAM
    assert entry["status"] == 200
    assert entry["stream"] is False
    assert isinstance(entry["latency_ms"], int | float) and entry["latency_ms"] >= 0
    time.sleep(0.05)
    mine = [r for r in access_log.records if fields(r).get("request_id") == request_id]
    assert len(mine) == 1


def test_stream_is_logged_with_time_to_first_event(
    http: httpx.Client, fake: FakeUpstream, access_log: Collector
) -> None:
    body = {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": PROMPT}]}
    response = http.post("/v1/messages", json={**body, "stream": True}, headers=AUTH)
    assert response.status_code == 200
    entry = as_json_line(access_log.wait_for(response.headers["x-request-id"]))
    assert entry["stream"] is True
    assert entry["provider"] == "an"
    assert entry["upstream_model"] == CLAUDE_UPSTREAM
    assert entry["status"] == 200
    assert 0 <= entry["ttft_ms"] <= entry["latency_ms"]


def test_failures_are_logged_with_their_status(
    http: httpx.Client, fake: FakeUpstream, access_log: Collector
) -> None:
    fake.script(Fail(500, message=f"boom {PROVIDER_KEYS[0]}"))
    response = chat(http)
    assert response.status_code == 502
    entry = as_json_line(access_log.wait_for(response.headers["x-request-id"]))
    assert entry["status"] == 502
    assert entry["error"] == "upstream_error"

    unknown = chat(http, model="no-such-model")
    entry = as_json_line(access_log.wait_for(unknown.headers["x-request-id"]))
    assert entry["status"] == 404
    assert entry["model"] == "no-such-model"


def test_rejected_keys_are_logged_without_the_key(
    http: httpx.Client, fake: FakeUpstream, access_log: Collector
) -> None:
    wrong = "sk-wrong-" + "Z" * 30
    body = {"model": GPT, "messages": [{"role": "user", "content": PROMPT}]}
    response = http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {wrong}"}
    )
    assert response.status_code == 401
    record = access_log.wait_for(response.headers["x-request-id"])
    line = JsonFormatter().format(record)
    assert wrong not in line
    assert json.loads(line)["status"] == 401


def test_client_disconnect_is_logged_as_499(
    http: httpx.Client, fake: FakeUpstream, access_log: Collector
) -> None:
    fake.script(SlowEvents(0.05, pieces=100))
    body = {"model": GPT, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as response:
        request_id = response.headers["x-request-id"]
        for _ in response.iter_raw():
            break
    entry = as_json_line(access_log.wait_for(request_id))
    assert entry["status"] == 499
