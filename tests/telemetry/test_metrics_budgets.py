"""Budgets as a scrape reads them from each ledger: what calls in flight hold, then what
the database recorded, per project (SQLite, Postgres, Redis); the spend shown stays when
retention deletes the spend rows (it is read from the rollups, as budgets are)."""

from __future__ import annotations

import asyncio
import math
import secrets
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from metrics_support import (
    chat,
    config,
    created,
    eventually,
    management,
    scrape,
    value,
)

from fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream, Stall
from harness import running_gateway
from tollway.config_retention import RetentionConfig
from tollway.metering.retention import Retention
from tollway.settings import Settings
from tollway.store.db import Database

GPT_COST = (PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2) / 1_000_000


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def ledger(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that pick the ledger: SQLite's file, Postgres rows, or Redis."""
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("shared_pg_url")}
    if request.param == "redis":
        url, prefix = (
            request.getfixturevalue("shared_redis_url"),
            f"tollway-test-{secrets.token_hex(4)}:",
        )
        request.addfinalizer(lambda: _forget(url, prefix))
        return {"redis_url": url, "redis_prefix": prefix}
    return {}


def _forget(url: str, prefix: str) -> None:
    """Remove this test's keys from the shared Redis."""
    client = redis.Redis.from_url(url)
    try:
        for name in client.scan_iter(match=prefix + "*"):
            client.delete(name)
    finally:
        client.close()


def test_held_while_in_flight_then_spent(
    ledger: dict[str, Any], fake: FakeUpstream, tmp_path: Path
) -> None:
    values = config(tmp_path / "data", fake, metrics={"public": True, "cache_seconds": 0})
    with running_gateway(Settings(**values, **ledger)) as gateway:
        url = gateway.url
        with management(url) as api:
            project = created(
                api.post(
                    "/projects",
                    json={"name": "held", "max_budget_usd": "1", "budget_period": "month"},
                )
            )
            key = created(api.post("/keys", json={"name": "k", "project": project["id"]}))["key"]
        samples = scrape(url)
        assert value(samples, "tollway_budget_limit_usd", project="held") == 1
        assert value(samples, "tollway_budget_held_usd", project="held") == 0
        assert value(samples, "tollway_budget_spent_usd", project="held") == 0
        fake.script(Stall(2.0), match="hold-me")
        answer: list[httpx.Response] = []
        call = threading.Thread(target=lambda: answer.append(chat(url, key, word="hold-me")))
        call.start()
        try:
            # The worst case is held while the upstream takes its time.
            assert eventually(
                lambda: value(scrape(url), "tollway_budget_held_usd", project="held") > 0
            )
        finally:
            call.join(10)
        assert answer and answer[0].status_code == 200, answer
        # Settled: nothing held, the call's cost recorded (the writer flushes within 0.25 s).
        assert eventually(
            lambda: math.isclose(
                value(scrape(url), "tollway_budget_spent_usd", project="held"), GPT_COST
            )
        )
        assert value(scrape(url), "tollway_budget_held_usd", project="held") == 0


def test_spent_stays_when_retention_deletes_the_rows(fake: FakeUpstream, tmp_path: Path) -> None:
    values = config(tmp_path / "data", fake, metrics={"public": True, "cache_seconds": 0})
    settings = Settings(**values)
    with running_gateway(settings) as gateway:
        url = gateway.url
        with management(url) as api:
            project = created(api.post("/projects", json={"name": "kept", "max_budget_usd": "1"}))
            key = created(api.post("/keys", json={"name": "k", "project": project["id"]}))["key"]
        for _ in range(3):
            assert chat(url, key).status_code == 200

        def spent() -> float:
            return value(scrape(url), "tollway_budget_spent_usd", project="kept")

        assert eventually(lambda: math.isclose(spent(), 3 * GPT_COST))
        # Two days on, a retention pass that keeps one day deletes every row.
        later = datetime.now(UTC) + timedelta(days=2)
        swept = asyncio.run(_sweep(settings.database_path_url, later))
        assert swept == 3
        with sqlite3.connect(tmp_path / "data" / "tollway.db") as db:
            assert db.execute("SELECT count(*) FROM spend").fetchone() == (0,)
        assert math.isclose(spent(), 3 * GPT_COST)


async def _sweep(database_url: str, now: datetime) -> int:
    """One retention pass as of ``now`` keeping a day of rows; the rows deleted."""
    db = Database(database_url)
    try:
        retention = Retention(db, RetentionConfig(requests_days=1, spend_days=1))
        return (await retention.sweep(now)).rows
    finally:
        await db.aclose()
