"""Rate limits in one gateway process: rpm, tpm and max_parallel, per key and per
project, refused with 429, ``Retry-After`` and ``x-ratelimit-*`` headers in the dialect
of the endpoint called."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from metering_support import (
    GPT_MINI,
    HAIKU,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    eventually,
    new_key,
    new_project,
    pipelined,
)

from checks import anthropic_error, openai_error
from harness import GatewayServer

# Tokens count when a call settles, a moment after its response has been sent: a call
# sent at once after it can still be admitted (test_next_call_sees_the_tokens_just_used),
# so the other tests pause.
SETTLE = 0.2
settled = threading.Event()  # never set: ``settled.wait(SETTLE)`` is a short pause
CHAT = {"model": GPT_MINI, "messages": MESSAGES, "max_tokens": 50}
MESSAGE = {"model": HAIKU, "messages": MESSAGES, "max_tokens": 50}


def chat(http: httpx.Client, secret: str) -> httpx.Response:
    """One chat completion."""
    return http.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {secret}"}
    )


def message(http: httpx.Client, secret: str) -> httpx.Response:
    """One Anthropic message."""
    return http.post("/v1/messages", json=MESSAGE, headers={"x-api-key": secret})


def check_429(response: httpx.Response, words: str) -> dict[str, Any]:
    """A 429 in the dialect of the endpoint, with a usable Retry-After."""
    if response.request.url.path == "/v1/messages":
        error = anthropic_error(response, 429)
        assert error["type"] == "rate_limit_error"
    else:
        error = openai_error(response, 429)
        assert error["type"] == "rate_limit_error"
        assert error["code"] == "rate_limit_exceeded"
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert words in error["message"], error["message"]
    return error


def test_rpm(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, rpm=2)
    first, second = chat(http, key["key"]), message(http, key["key"])
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    for refused in (chat(http, key["key"]), message(http, key["key"])):
        check_429(refused, "limit of 2 requests per minute")
        assert refused.headers["x-ratelimit-limit-requests"] == "2"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(up.requests) == 2
    # Another key is not affected.
    assert chat(http, new_key(api, rpm=2)["key"]).status_code == 200


def test_tpm(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, tpm=1000)
    up.script(Metered(Tokens(input=900, output=200)), path="/v1/chat/completions")
    first = chat(http, key["key"])
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "1000"
    settled.wait(SETTLE)  # tokens count when the call settles, just after the response
    refused = message(http, key["key"])
    check_429(refused, "limit of 1000 tokens per minute")
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert len(up.requests) == 1


def test_tpm_counts_streamed_usage(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, tpm=500)
    up.script(Metered(Tokens(input=400, output=150)), path="/v1/chat/completions")
    streamed = http.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert streamed.status_code == 200
    settled.wait(SETTLE)
    check_429(chat(http, key["key"]), "tokens per minute")


def test_next_call_sees_the_tokens_just_used(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    admitted = 0
    for _ in range(10):
        key = new_key(api, tpm=100)
        up.script(Metered(Tokens(input=90, output=20)), path="/v1/chat/completions")
        statuses = pipelined(mgw.port, "/v1/chat/completions", CHAT, key["key"])
        assert statuses[0] == 200
        admitted += statuses[1] == 200
    assert admitted == 0


async def _concurrent(url: str, calls: list[tuple[str, dict[str, Any], dict[str, str]]]) -> Any:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=15, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(path, json=body, headers=headers) for path, body, headers in calls)
        )


def _slow_upstream(up: MeteredUpstream, seconds: float = 1.0) -> None:
    up.script(Metered(delay=seconds), path="/v1/chat/completions", persistent=True)
    up.script(Metered(delay=seconds), path="/v1/messages", persistent=True)


async def test_max_parallel(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, max_parallel=3)
    _slow_upstream(up)
    calls = [
        ("/v1/chat/completions", CHAT, {"authorization": f"Bearer {key['key']}"}),
        ("/v1/messages", MESSAGE, {"x-api-key": key["key"]}),
    ] * 2
    responses = await _concurrent(mgw.url, calls)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 429]
    [refused] = [r for r in responses if r.status_code == 429]
    check_429(refused, "limit of 3 parallel requests")
    # Finished calls free their slots.
    up.reset()
    again = await asyncio.to_thread(
        eventually, lambda: chat(http, key["key"]), lambda r: r.status_code == 200
    )
    assert again.status_code == 200


def test_project_rpm_spans_its_keys(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    project = new_project(api, rpm=3)
    one = new_key(api, project=project["name"])
    two = new_key(api, project=project["name"], rpm=100)
    assert chat(http, one["key"]).status_code == 200
    assert message(http, two["key"]).status_code == 200
    third = chat(http, one["key"])
    assert third.status_code == 200
    # The project scope's headers when the key has no limits of its own.
    assert third.headers["x-ratelimit-limit-requests"] == "3"
    check_429(message(http, two["key"]), "project's limit of 3 requests per minute")
    check_429(chat(http, one["key"]), "project's limit of 3 requests per minute")
    # A key of another project is not affected.
    assert chat(http, new_key(api)["key"]).status_code == 200


def test_project_tpm(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    project = new_project(api, tpm=100)
    one = new_key(api, project=project["name"])
    two = new_key(api, project=project["name"])
    up.script(Metered(Tokens(input=80, output=30)), path="/v1/messages")
    assert message(http, one["key"]).status_code == 200
    check_429(chat(http, two["key"]), "project's limit of 100 tokens per minute")


async def test_project_max_parallel(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    project = new_project(api, max_parallel=1)
    one = new_key(api, project=project["name"])
    two = new_key(api, project=project["name"])
    _slow_upstream(up)
    responses = await _concurrent(
        mgw.url,
        [
            ("/v1/chat/completions", CHAT, {"authorization": f"Bearer {one['key']}"}),
            ("/v1/messages", MESSAGE, {"x-api-key": two["key"]}),
        ],
    )
    assert sorted(r.status_code for r in responses) == [200, 429]
    [refused] = [r for r in responses if r.status_code == 429]
    check_429(refused, "project's limit of 1 parallel requests")
