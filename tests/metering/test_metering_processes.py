"""Budgets and rate limits across gateway processes.

Two ``tollway serve`` processes on different ports share one SQLite data dir and one
Redis (``redis_url`` with a prefix unique to this run); calls alternate between them, so
every limit is only right if the state really is shared. Without Redis, two gateway
apps on one SQLite data dir stand for ``tollway serve --workers 2`` on one node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from metering_support import (
    CLIENT_TIMEOUT,
    DOLLAR_CLAUDE,
    DOLLAR_GPT,
    GPT_MINI,
    MASTER_KEY,
    MESSAGES,
    MODELS,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    budget,
    insert_spend,
    new_key,
    providers,
    units,
    wait_for_requests,
    write_config,
)

from checks import anthropic_error, openai_error
from harness import GatewayServer, gateway_settings
from served import ServedGateway as Served


@pytest.fixture(scope="module")
def pair(
    metered_server: MeteredUpstream,
    redis_url: str,
    redis_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Served, Served]]:
    """Two gateway processes, one data dir, one Redis."""
    tmp = tmp_path_factory.mktemp("redis-pair")
    data_dir = tmp / "data"
    config = write_config(
        tmp / "cfg.yaml",
        data_dir,
        metered_server,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    first = Served(config, data_dir).start()  # runs the migrations
    try:
        second = Served(config, data_dir).start()
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


@pytest.fixture
def papi(pair: tuple[Served, Served]) -> Iterator[httpx.Client]:
    """The management API of the first process."""
    with admin_client(pair[0].url) as client:
        yield client


def post(url: str, path: str, body: dict[str, Any], secret: str) -> httpx.Response:
    """One call on a fresh connection."""
    header = {"x-api-key": secret} if path.startswith("/v1/messages") else None
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        return client.post(path, json=body, headers=header or {"authorization": f"Bearer {secret}"})


CHAT = {"model": GPT_MINI, "messages": MESSAGES, "max_tokens": 50}


async def fire_at(pair: tuple[Any, Any], secret: str, count: int) -> list[httpx.Response]:
    """``count`` concurrent $10 calls, alternating processes and dialects."""
    limits = httpx.Limits(max_connections=100)
    clients = [
        httpx.AsyncClient(base_url=gateway.url, timeout=CLIENT_TIMEOUT, limits=limits)
        for gateway in pair
    ]

    async def one(index: int) -> httpx.Response:
        client = clients[index % 2]
        if (index // 2) % 2:
            return await client.post(
                "/v1/messages",
                json={"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": 10},
                headers={"x-api-key": secret},
            )
        return await client.post(
            "/v1/chat/completions",
            json={"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": 10},
            headers={"authorization": f"Bearer {secret}"},
        )

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.aclose()


def script_worst_case(up: MeteredUpstream, delay: float = 0.0) -> None:
    """$10 reserved and $10 spent per call, on both dialects."""
    worst = Metered(Tokens(input=17, output=10), delay=delay)
    up.script(worst, path="/v1/chat/completions", persistent=True)
    up.script(worst, path="/v1/messages", persistent=True)


async def test_concurrent_calls_on_two_processes_never_overspend(
    pair: tuple[Served, Served], up: MeteredUpstream, papi: httpx.Client
) -> None:
    key = new_key(papi, max_budget_usd=budget(35))
    script_worst_case(up)
    responses = await fire_at(pair, key["key"], 40)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 3, statuses
    assert statuses.count(402) == 37, statuses
    for response in responses:
        if response.status_code == 402:
            if response.request.url.path == "/v1/messages":
                assert anthropic_error(response, 402)["type"] == "billing_error"
            else:
                assert openai_error(response, 402)["code"] == "budget_exceeded"
    # Both processes refused some: the budget really was shared.
    refused_by = {r.request.url.port for r in responses if r.status_code == 402}
    assert refused_by == {gateway.port for gateway in pair}
    report = await asyncio.to_thread(wait_for_requests, papi, 40, key=key["id"])
    assert report["totals"]["requests"] == 40
    assert Decimal(report["totals"]["cost_usd"]) == units(30)


async def test_day_budget_seeded_from_the_database(
    pair: tuple[Served, Served], up: MeteredUpstream, papi: httpx.Client
) -> None:
    """The Redis slot of a day budget starts from today's recorded spend only."""
    key = new_key(papi, max_budget_usd=budget(25), budget_period="day")
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    url = f"sqlite:///{pair[0].data_dir / 'tollway.db'}"
    for ts, cost in ((midnight - timedelta(seconds=1), 500), (midnight, 6)):
        await insert_spend(
            url, key_id=key["id"], project_id=key["project_id"], ts=ts, cost=units(cost)
        )
    up.script(Metered(Tokens(input=17, output=10)), path="/v1/chat/completions", persistent=True)
    body = {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": 10}
    first = await asyncio.to_thread(post, pair[0].url, "/v1/chat/completions", body, key["key"])
    assert first.status_code == 200, first.text
    second = await asyncio.to_thread(post, pair[1].url, "/v1/chat/completions", body, key["key"])
    assert "$0.090000 left" in openai_error(second, 402)["message"]


def test_rpm_is_shared(
    pair: tuple[Served, Served], up: MeteredUpstream, papi: httpx.Client
) -> None:
    key = new_key(papi, rpm=2)
    a, b = pair
    assert post(a.url, "/v1/chat/completions", CHAT, key["key"]).status_code == 200
    second = post(b.url, "/v1/chat/completions", CHAT, key["key"])
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    for gateway in (a, b):
        refused = post(gateway.url, "/v1/chat/completions", CHAT, key["key"])
        error = openai_error(refused, 429)
        assert "limit of 2 requests per minute" in error["message"]
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["x-ratelimit-limit-requests"] == "2"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    refused = post(
        b.url,
        "/v1/messages",
        {"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": 5},
        key["key"],
    )
    assert anthropic_error(refused, 429)["type"] == "rate_limit_error"
    assert len(up.requests) == 2


def test_tpm_is_shared(
    pair: tuple[Served, Served], up: MeteredUpstream, papi: httpx.Client
) -> None:
    key = new_key(papi, tpm=1000)
    up.script(Metered(Tokens(input=900, output=200)), path="/v1/chat/completions")
    assert post(pair[0].url, "/v1/chat/completions", CHAT, key["key"]).status_code == 200
    refused = post(pair[1].url, "/v1/chat/completions", CHAT, key["key"])
    assert "tokens per minute" in openai_error(refused, 429)["message"]


async def test_max_parallel_is_shared(
    pair: tuple[Served, Served], up: MeteredUpstream, papi: httpx.Client
) -> None:
    key = new_key(papi, max_parallel=1)
    up.script(Metered(delay=1.5), path="/v1/chat/completions", persistent=True)
    slow = asyncio.create_task(
        asyncio.to_thread(post, pair[0].url, "/v1/chat/completions", CHAT, key["key"])
    )
    assert await asyncio.to_thread(up.wait_for, lambda: len(up.requests) == 1, 5.0)
    refused = await asyncio.to_thread(post, pair[1].url, "/v1/chat/completions", CHAT, key["key"])
    assert "parallel requests" in openai_error(refused, 429)["message"]
    assert (await slow).status_code == 200
    up.reset()
    # The finished call freed the slot for both processes.
    assert post(pair[1].url, "/v1/chat/completions", CHAT, key["key"]).status_code == 200


@pytest.fixture(scope="module")
def local_pair(
    metered_server: MeteredUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two gateway apps on one SQLite data dir, no Redis, as ``--workers 2`` runs them
    (here two uvicorn servers in this process: each app has its own ledger, exactly as
    each worker process has)."""
    data_dir = tmp_path_factory.mktemp("sqlite-pair")
    settings = gateway_settings(
        metered_server,
        data_dir,
        master_key=MASTER_KEY,
        providers=providers(metered_server),
        models=MODELS,
        timeouts={"connect": 2.0, "read": 10.0, "stream_idle": 10.0},
        log={"level": "warning", "access": False},
    )
    first = GatewayServer(settings).start()  # runs the migrations
    second = GatewayServer(settings).start()
    yield first, second
    second.stop()
    first.stop()


async def test_two_processes_without_redis_never_overspend(
    local_pair: tuple[GatewayServer, GatewayServer], up: MeteredUpstream
) -> None:
    """Without Redis the budget still holds across processes sharing one database
    (a per-process ledger would let each admit the whole budget: $60 on $35)."""
    with admin_client(local_pair[0].url) as api:
        key = new_key(api, max_budget_usd=budget(35))
    script_worst_case(up, delay=0.3)
    responses = await fire_at(local_pair, key["key"], 20)
    with admin_client(local_pair[0].url) as api:
        report = await asyncio.to_thread(wait_for_requests, api, 20, key=key["id"])
    assert [r.status_code for r in responses].count(200) <= 3
    assert Decimal(report["totals"]["cost_usd"]) <= units(35)
