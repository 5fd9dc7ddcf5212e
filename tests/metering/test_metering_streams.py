"""Metered streams stay faithful, and cut streams are still metered.

The gateway asks OpenAI-type upstreams for usage on chat/completions streams
(``stream_options.include_usage``) even when the client did not; the client must then get
exactly the bytes the upstream sends a client that did not ask: no usage chunk and no
``"usage": null`` fields. A client that asked gets the usage chunk untouched. Both are
metered exactly. A client that goes away mid-stream is metered by estimate (status 499).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    CLIENT_TIMEOUT,
    GPT_MINI,
    HAIKU,
    HOUSE_GPT,
    MESSAGES,
    O3_MINI,
    SONNET,
    UPSTREAM_OF,
    Metered,
    MeteredUpstream,
    Tokens,
    eventually,
    expected_cost,
    new_key,
    spend_rows,
    wait_for_requests,
)

from harness import GatewayServer

TOKENS = Tokens(input=2048, cached=512, output=321, reasoning=128)
LEGACY_TOKENS = Tokens(input=2048, output=321)  # legacy completions report no details
ANTHROPIC_TOKENS = Tokens(input=4000, cached=1000, cache_write=500, output=77)

# name -> (path, client body, model)
STREAMS: dict[str, tuple[str, dict[str, Any], str]] = {
    "chat": ("/v1/chat/completions", {"messages": MESSAGES, "stream": True}, GPT_MINI),
    "chat+include_usage": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        GPT_MINI,
    ),
    "chat+include_usage=false": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": False}},
        O3_MINI,
    ),
    "completions": ("/v1/completions", {"prompt": "Say hello.", "stream": True}, HOUSE_GPT),
    "completions+include_usage": (
        "/v1/completions",
        {"prompt": "Say hello.", "stream": True, "stream_options": {"include_usage": True}},
        HOUSE_GPT,
    ),
    "responses": ("/v1/responses", {"input": "Say hello.", "stream": True}, O3_MINI),
    "messages": (
        "/v1/messages",
        {"messages": MESSAGES, "stream": True, "max_tokens": 500},
        SONNET,
    ),
}


def direct(up: MeteredUpstream, path: str, body: dict[str, Any]) -> bytes:
    """What the upstream itself sends a client making this exact request."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        response = client.post(up.url + path, json=body)
        assert response.status_code == 200, response.text
        return response.content


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_bytes_are_what_the_client_asked_for(
    name: str,
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    db_path: Path,
) -> None:
    path, body, model = STREAMS[name]
    tokens = {"/v1/messages": ANTHROPIC_TOKENS, "/v1/completions": LEGACY_TOKENS}.get(path, TOKENS)
    up.script(Metered(tokens), path=path)
    expected_bytes = direct(up, path, {**body, "model": UPSTREAM_OF[model]})

    key = new_key(api)
    up.script(Metered(tokens), path=path)
    with httpx.Client(base_url=mgw.url, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(
            path,
            json={**body, "model": model},
            headers={"authorization": f"Bearer {key['key']}"},
        )
    assert response.status_code == 200, response.text
    assert response.content == expected_bytes

    client_asked = (body.get("stream_options") or {}).get("include_usage") is True
    if path in ("/v1/chat/completions", "/v1/completions"):
        # The upstream was asked for usage either way ...
        assert up.last(path).body["stream_options"]["include_usage"] is True
        assert b'"usage":{' in up.last(path).sent
        # ... and the client sees it only when it asked.
        assert (b'"usage"' in response.content) is client_asked

    report = wait_for_requests(api, 1, key=key["id"])
    assert Decimal(report["totals"]["cost_usd"]) == expected_cost(model, tokens)
    assert report["totals"]["input_tokens"] == tokens.input
    assert report["totals"]["output_tokens"] == tokens.output
    assert report["totals"]["cache_read_tokens"] == tokens.cached
    assert report["totals"]["cache_write_tokens"] == tokens.cache_write
    [row] = spend_rows(db_path, "request_id = ?", response.headers["x-request-id"])
    assert bool(row["estimated"]) is False
    assert row["status"] == 200


def read_events_then_close(url: str, path: str, body: dict[str, Any], secret: str) -> str:
    """Read two SSE events, then close the connection; returns the request id."""
    with (
        httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client,
        client.stream(
            "POST", path, json=body, headers={"authorization": f"Bearer {secret}"}
        ) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if seen.count(b"\n\n") >= 2:
                break
    return request_id


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [
        ("/v1/chat/completions", GPT_MINI, {"messages": MESSAGES, "stream": True}),
        ("/v1/messages", HAIKU, {"messages": MESSAGES, "stream": True, "max_tokens": 900}),
    ],
    ids=["chat", "messages"],
)
def test_disconnect_mid_stream_is_metered_by_estimate(
    path: str,
    model: str,
    body: dict[str, Any],
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    db_path: Path,
) -> None:
    key = new_key(api, max_parallel=1)
    tokens = Tokens(input=1500, output=400)
    up.script(Metered(tokens, delay=0.1, pieces=40), path=path)
    request_id = read_events_then_close(mgw.url, path, {**body, "model": model}, key["key"])

    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["requests"] == 1
    assert report["totals"]["estimated_requests"] == 1
    [row] = spend_rows(db_path, "request_id = ?", request_id)
    assert row["status"] == 499
    assert row["error"] == "client_disconnected"
    assert bool(row["estimated"]) is True
    assert bool(row["priced"]) is True
    assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    # Far fewer than the whole answer: only what was generated before the cut.
    assert row["output_tokens"] < tokens.output
    if path == "/v1/messages":
        # message_start carried the upstream's own input count; it is kept.
        assert row["input_tokens"] == tokens.input
    recorded = Tokens(input=row["input_tokens"], output=row["output_tokens"])
    assert Decimal(str(row["cost_usd"])) == expected_cost(model, recorded)
    assert Decimal(report["totals"]["cost_usd"]) == expected_cost(model, recorded)

    # The gateway dropped the upstream connection: the fake's next write failed and it
    # never finished the stream.
    received = up.last(path)
    assert up.wait_for(lambda: received.write_failed_at is not None, timeout=3.0)
    assert not received.completed
    assert received.events_sent < 40

    # The cut call gave its parallel slot back.
    up.reset()
    with httpx.Client(base_url=mgw.url, timeout=CLIENT_TIMEOUT) as client:
        again = eventually(
            lambda: client.post(
                path,
                json={**body, "model": model, "stream": False},
                headers={"authorization": f"Bearer {key['key']}"},
            ),
            lambda response: response.status_code == 200,
        )
    assert again.status_code == 200, again.text


def test_usage_null_fields_inside_text_are_not_touched(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    """Only the JSON field is stripped: generated text that spells out a usage field
    passes through unchanged (it is escaped inside the JSON string)."""
    key = new_key(api)
    words = ('{"usage": null}', ", then ", '"usage":null,', " done")
    tricky = Metered(Tokens(input=10, output=3), words=words)
    body = {"messages": MESSAGES, "stream": True}
    path = "/v1/chat/completions"
    up.script(tricky, path=path)
    plain = direct(up, path, {**body, "model": UPSTREAM_OF[GPT_MINI]})
    up.script(tricky, path=path)
    with httpx.Client(base_url=mgw.url, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(
            path,
            json={**body, "model": GPT_MINI},
            headers={"authorization": f"Bearer {key['key']}"},
        )
    assert response.content == plain
    assert b'\\"usage\\": null' in response.content
    started = time.monotonic()
    report = wait_for_requests(api, 1, key=key["id"])
    assert time.monotonic() - started < 5
    assert report["totals"]["output_tokens"] == 3
