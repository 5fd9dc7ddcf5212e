"""A completed call's spend record survives ``kill -9`` of the gateway process.

The gateway journals each record to a local file before the response completes and
inserts into the database in the background; a restarted gateway replays what the dead
one left. To be sure the record cannot have reached the database before the kill, the
test holds SQLite's write lock while the calls run and the process dies.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from metering_support import (
    CLIENT_TIMEOUT,
    GPT_MINI,
    HAIKU,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    expected_cost,
    new_key,
    spend,
    spend_rows,
    write_config,
)

from served import ServedGateway as Served

CHAT_TOKENS = Tokens(input=1000, cached=200, output=50)
MESSAGE_TOKENS = Tokens(input=3000, cached=1000, cache_write=1000, output=80)


@pytest.fixture
def served(up: MeteredUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A gateway process of its own (SQLite in a fresh data dir)."""
    tmp = tmp_path_factory.mktemp("kill9")
    gateway = Served(write_config(tmp / "cfg.yaml", tmp / "data", up), tmp / "data").start()
    yield gateway
    gateway.stop()


def _calls(url: str, secret: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": GPT_MINI, "messages": MESSAGES, "max_tokens": 100},
            headers={"authorization": f"Bearer {secret}"},
        )
        assert chat.status_code == 200, chat.text
        streamed = client.post(
            "/v1/messages",
            json={"model": HAIKU, "messages": MESSAGES, "max_tokens": 100, "stream": True},
            headers={"x-api-key": secret},
        )
        assert streamed.status_code == 200, streamed.text
        assert b"message_stop" in streamed.content
    return [chat.headers["x-request-id"], streamed.headers["x-request-id"]]


def test_record_survives_kill_9(served: Served, up: MeteredUpstream) -> None:
    with admin_client(served.url) as api:
        key = new_key(api)
    up.script(Metered(CHAT_TOKENS), path="/v1/chat/completions")
    up.script(Metered(MESSAGE_TOKENS), path="/v1/messages")
    db_path = served.data_dir / "tollway.db"

    lock = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # no other writer can commit until we let go
        request_ids = _calls(served.url, key["key"])
        time.sleep(0.2)  # several flush attempts come and go, all blocked
        served.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    placeholders = ",".join("?" * len(request_ids))
    assert spend_rows(db_path, f"request_id IN ({placeholders})", *request_ids) == []
    assert list((served.data_dir / "journal").glob("spend-*.jsonl")), "nothing was journaled"

    served.port = 0
    served.start()
    with admin_client(served.url) as api:
        report = spend(api, key=key["id"], group_by="endpoint")
    assert report["totals"]["requests"] == 2
    expected = expected_cost(GPT_MINI, CHAT_TOKENS) + expected_cost(HAIKU, MESSAGE_TOKENS)
    assert Decimal(report["totals"]["cost_usd"]) == expected
    assert report["totals"]["input_tokens"] == CHAT_TOKENS.input + MESSAGE_TOKENS.input
    rows = spend_rows(db_path, f"request_id IN ({placeholders})", *request_ids)
    assert {row["request_id"] for row in rows} == set(request_ids)
    assert all(row["status"] == 200 for row in rows)

    with admin_client(served.url) as api:
        key = new_key(api)
    print_call_times(served, up, key["key"])


def print_call_times(served: Served, up: MeteredUpstream, secret: str) -> None:
    """Time per call through the gateway and direct to the upstream (printed only)."""
    gateway_times, direct_times = [], []
    headers = {"authorization": f"Bearer {secret}"}
    body = {"model": GPT_MINI, "messages": MESSAGES, "max_tokens": 10}
    with (
        httpx.Client(base_url=served.url, timeout=CLIENT_TIMEOUT) as through,
        httpx.Client(base_url=up.url, timeout=CLIENT_TIMEOUT) as direct,
    ):
        for _ in range(20):
            started = time.perf_counter()
            assert through.post("/v1/chat/completions", json=body, headers=headers).is_success
            gateway_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert direct.post("/v1/chat/completions", json=body).is_success
            direct_times.append(time.perf_counter() - started)
    print(
        f"\nper call (median of 20): through the gateway "
        f"{statistics.median(gateway_times) * 1000:.2f} ms, direct to the upstream "
        f"{statistics.median(direct_times) * 1000:.2f} ms"
    )
