"""A client that leaves is metered for what the upstream did, whatever the endpoint.

- A non-streamed call whose client disconnects while the upstream works is recorded like
  a cut stream: status 499, estimated, its input counted (the upstream read the prompt).
- A stream whose final event reached the client is served (200), even when the client
  hangs up at once afterwards.
"""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
from metering_support import (
    HOUSE_GPT,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    new_key,
    spend_rows,
    wait_for_requests,
)

from harness import GatewayServer


async def test_non_stream_disconnect_is_estimated(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, db_path: Path
) -> None:
    key = new_key(api)
    up.script(Metered(Tokens(), delay=2.0), path="/v1/chat/completions")
    body = {"model": HOUSE_GPT, "messages": MESSAGES * 20, "max_tokens": 20}
    async with httpx.AsyncClient(base_url=mgw.url, timeout=10) as client:
        call = asyncio.create_task(
            client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key['key']}"},
            )
        )
        await asyncio.to_thread(up.wait_for, lambda: len(up.requests) == 1, 5.0)
        call.cancel()  # the client goes away while the upstream works
    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["requests"] == 1
    [row] = spend_rows(db_path, "key_id = ?", key["id"])
    assert row["status"] == 499
    assert row["error"] == "client_disconnected"
    assert bool(row["estimated"]) is True
    assert row["input_tokens"] > 20  # twenty messages, counted by the gateway
    assert Decimal(str(row["cost_usd"])) > 0


def test_stream_delivered_then_hung_up_is_served(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, db_path: Path
) -> None:
    """The client closes the socket the moment it has ``[DONE]``, every time."""
    key = new_key(api)
    up.script(Metered(Tokens(), tail=0.3), path="/v1/chat/completions", persistent=True)
    body = orjson.dumps({"model": HOUSE_GPT, "messages": MESSAGES, "stream": True})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {key['key']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    runs = 10
    for _ in range(runs):
        with socket.create_connection(("127.0.0.1", mgw.port), timeout=10) as sock:
            sock.sendall(request)
            seen = b""
            while b"[DONE]" not in seen:
                chunk = sock.recv(65536)
                assert chunk, "the stream ended before [DONE]"
                seen += chunk
    wait_for_requests(api, runs, key=key["id"])
    rows = spend_rows(db_path, "key_id = ?", key["id"])
    assert [row["status"] for row in rows] == [200] * runs
    assert all(not row["estimated"] for row in rows)
