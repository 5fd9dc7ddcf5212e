"""Outages of Redis and of the database degrade clearly and safely.

Each test runs its own gateway against a Redis or PostgreSQL server of its own
(``tests/services.py``), which it stops and starts; the shared servers are never
touched.

- Redis down: keys with a budget or rate limits get 503 in their dialect with
  Retry-After (rate limits may be configured to fail open); other keys keep working;
  ``/health/ready`` says which dependency is down.
- Redis restarted (it keeps nothing): a budget's slot is rebuilt from the database's
  spend before anything is admitted, so no key spends past its budget, and calls in
  flight across the restart still answer 200 (their settlement is not an error).
- The database down: keys verified within the grace window keep working and their spend
  is journaled, landing when the database returns; unknown keys and, past the window,
  every key get 503. No record ends with status 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    DOLLAR_CLAUDE,
    DOLLAR_GPT,
    MASTER_KEY,
    MESSAGES,
    MODELS,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    budget,
    new_key,
    providers,
    units,
)

from checks import anthropic_error, openai_error
from harness import GatewayServer
from services import PrivatePostgres, PrivateRedis, stopped
from tollway.settings import Settings

CALL = Tokens(input=17, output=10)  # 10 UNITs a call on the dollar-* models


def _settings(upstream: MeteredUpstream, data: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": data,
        "providers": providers(upstream),
        "models": MODELS,
        "retry": {"attempts": 0},
        "log": {"level": "warning", "access": False},
    }
    base.update(values)
    return Settings(**base)


@pytest.fixture
def redis_gateway(
    metered_server: MeteredUpstream, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[GatewayServer]:
    """A gateway sharing budgets and limits through the private Redis."""
    server = GatewayServer(
        _settings(metered_server, tmp_path / "data", redis_url=private_redis.url)
    ).start()
    yield server
    server.stop()


def _chat(client: httpx.Client, secret: str, max_tokens: int = 10) -> httpx.Response:
    body = {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": max_tokens}
    return client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}
    )


def _message(client: httpx.Client, secret: str) -> httpx.Response:
    body = {"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": 10}
    return client.post("/v1/messages", json=body, headers={"x-api-key": secret})


def test_redis_down_fails_closed_for_budgets_and_limits_only(
    redis_gateway: GatewayServer, private_redis: PrivateRedis, up: MeteredUpstream
) -> None:
    up.script(Metered(CALL), persistent=True)
    with (
        admin_client(redis_gateway.url) as api,
        httpx.Client(base_url=redis_gateway.url, timeout=15) as http,
    ):
        budgeted = new_key(api, max_budget_usd=budget(100))
        limited = new_key(api, rpm=1000)
        plain = new_key(api)
        assert _chat(http, budgeted["key"]).status_code == 200
        with stopped(private_redis):
            refused = _chat(http, budgeted["key"])
            assert openai_error(refused, 503)["code"] == "budget_unavailable"
            assert int(refused.headers["retry-after"]) >= 1
            assert (
                anthropic_error(_message(http, budgeted["key"]), 503)["type"] == "overloaded_error"
            )
            assert (
                openai_error(_chat(http, limited["key"]), 503)["code"] == "rate_limits_unavailable"
            )
            assert _chat(http, plain["key"]).status_code == 200
            ready = http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["redis"] == "down"
        assert http.get("/health/ready").status_code == 200
        assert _chat(http, budgeted["key"]).status_code == 200
        assert _chat(http, limited["key"]).status_code == 200
        rows = api.get("/spend", params={"group_by": "key"}).json()
        assert rows["totals"]["requests"] == 7


def test_rate_limits_may_fail_open(
    metered_server: MeteredUpstream,
    private_redis: PrivateRedis,
    up: MeteredUpstream,
    tmp_path: Path,
) -> None:
    settings = _settings(
        metered_server, tmp_path / "data", redis_url=private_redis.url, rate_limits_fail_open=True
    )
    up.script(Metered(CALL), persistent=True)
    server = GatewayServer(settings).start()
    try:
        with admin_client(server.url) as api, httpx.Client(base_url=server.url, timeout=15) as http:
            limited = new_key(api, rpm=1000)
            budgeted = new_key(api, max_budget_usd=budget(100), rpm=1000)
            with stopped(private_redis):
                assert _chat(http, limited["key"]).status_code == 200
                # Budgets never fail open.
                assert (
                    openai_error(_chat(http, budgeted["key"]), 503)["code"] == "budget_unavailable"
                )
    finally:
        server.stop()


def _spent(api: httpx.Client, key_id: str) -> Decimal:
    report = api.get("/spend", params={"key": key_id}).json()
    return Decimal(report["totals"]["cost_usd"])


def test_redis_restart_does_not_reset_budgets(
    redis_gateway: GatewayServer, private_redis: PrivateRedis, up: MeteredUpstream
) -> None:
    up.script(Metered(CALL), persistent=True)
    with (
        admin_client(redis_gateway.url) as api,
        httpx.Client(base_url=redis_gateway.url, timeout=15) as http,
    ):
        key = new_key(api, max_budget_usd=budget(50))
        for _ in range(3):
            assert _chat(http, key["key"]).status_code == 200
        private_redis.restart()  # everything Redis held is gone
        statuses = [_chat(http, key["key"]).status_code for _ in range(6)]
        assert statuses == [200, 200, 402, 402, 402, 402]
        assert _spent(api, key["id"]) == units(50)


async def test_calls_in_flight_across_a_redis_restart(
    redis_gateway: GatewayServer, private_redis: PrivateRedis, up: MeteredUpstream
) -> None:
    """Calls held before the restart and settled after it answer 200; the budget is
    rebuilt with them counted once, so what follows spends exactly the rest."""
    up.script(Metered(CALL, delay=1.5), persistent=True)
    with admin_client(redis_gateway.url) as api:
        key = new_key(api, max_budget_usd=budget(80))
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=redis_gateway.url, timeout=30, limits=limits) as client:
        body = {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": 10}
        headers = {"authorization": f"Bearer {key['key']}"}
        flying = [
            asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=headers))
            for _ in range(4)
        ]
        await asyncio.to_thread(up.wait_for, lambda: len(up.requests) == 4, 10.0)
        await asyncio.to_thread(private_redis.restart)
        answered = await asyncio.gather(*flying)
        assert [r.status_code for r in answered] == [200] * 4
        later = [
            (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code
            for _ in range(6)
        ]
    assert later == [200, 200, 200, 200, 402, 402]
    with admin_client(redis_gateway.url) as api:
        assert _spent(api, key["id"]) == units(80)


# ----------------------------------------------------------------- the database


@pytest.fixture
def pg_gateway(
    metered_server: MeteredUpstream, private_postgres: PrivatePostgres, tmp_path: Path
) -> Iterator[GatewayServer]:
    """A gateway on the private PostgreSQL with a short grace window."""
    url = private_postgres.create_database()
    settings = _settings(metered_server, tmp_path / "data", database_url=url, database_grace=3)
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def test_database_outage_grace_then_503_and_spend_lands_later(
    pg_gateway: GatewayServer, private_postgres: PrivatePostgres, up: MeteredUpstream
) -> None:
    up.script(Metered(CALL), persistent=True)
    with (
        admin_client(pg_gateway.url) as api,
        httpx.Client(base_url=pg_gateway.url, timeout=30) as http,
    ):
        known = new_key(api)
        stranger = new_key(api)  # never used before the outage: not verified
        assert _chat(http, known["key"]).status_code == 200
        ids = []
        with stopped(private_postgres):
            started = time.monotonic()
            for _ in range(3):
                answer = _chat(http, known["key"])
                assert answer.status_code == 200, answer.text
                ids.append(answer.headers["x-request-id"])
            assert openai_error(_chat(http, stranger["key"]), 503)["code"] == "database_unavailable"
            ready = http.get("/health/ready")
            assert (ready.status_code, ready.json()["database"]) == (503, "down")
            time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
            late = _chat(http, known["key"])
            assert openai_error(late, 503)["code"] == "database_unavailable"
            assert late.headers["retry-after"].isdigit()
        # Back: the journaled records land, and the keys work again.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            report = api.get("/spend", params={"key": known["id"]})
            if report.status_code == 200 and report.json()["totals"]["requests"] == 5:
                break
            time.sleep(0.2)
        # 1 + 3 (a call refused before its key could be verified is not the key's)
        assert report.json()["totals"]["requests"] == 4
        assert _chat(http, stranger["key"]).status_code == 200
