"""Helpers for the request log, rollup, retention, capture and subject tests.

The gateway under test is the real app under uvicorn on a real port
(``harness.GatewayServer``) in front of the scripted fake upstream, on SQLite or on a
database of its own on the shared Postgres. Rows are written through the spend writer's
own insert (``spend_rows.insert_rows``), so their rollups are kept as in production.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from fake_upstream import FakeUpstream
from harness import CLAUDE, CLAUDE_UPSTREAM, GPT, GPT_UPSTREAM, MASTER_KEY, gateway_settings
from tollway.metering.spend_rows import insert_rows, to_row
from tollway.settings import Settings
from tollway.store.db import Database

CLIENT_TIMEOUT = 10.0
# Prices that make every call's cost exact and distinct: $1 / $2 per million tokens.
PRICE = {"input_mtok": "1", "output_mtok": "2"}
MODELS = [
    {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM, "price": PRICE},
    {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM, "price": PRICE},
]
USER_AGENT = "requestlog-tests/1.0 (+https://example.invalid)"


def settings_for(
    fake: FakeUpstream, data_dir: Path, database_url: str | None, **more: Any
) -> Settings:
    """A gateway in front of ``fake`` on SQLite (``database_url`` None) or Postgres."""
    overrides: dict[str, Any] = {
        "models": MODELS,
        "log": {"level": "warning", "access": True},
        **more,
    }
    if database_url is not None:
        overrides["database_url"] = database_url
    return gateway_settings(fake, data_dir, **overrides)


def admin(url: str, key: str = MASTER_KEY) -> httpx.Client:
    """The management API as ``key``."""
    return httpx.Client(
        base_url=url + "/api/v1",
        headers={"authorization": f"Bearer {key}"},
        timeout=CLIENT_TIMEOUT,
    )


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON of a response that must have ``status``."""
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def new_project(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """A project with a unique name."""
    body.setdefault("name", "rl-" + os.urandom(5).hex())
    return dict(ok(api.post("/projects", json=body), 201))


def new_key(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """A virtual key (the answer holds the secret in ``key``)."""
    body.setdefault("name", "request log test")
    return dict(ok(api.post("/keys", json=body), 201))


def chat(url: str, secret: str, content: str = "Say hello.", **extra: Any) -> httpx.Response:
    """One chat completion through the gateway with ``secret``."""
    body = {"model": GPT, "messages": [{"role": "user", "content": content}], **extra}
    headers = {"authorization": f"Bearer {secret}", "user-agent": USER_AGENT}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def message(url: str, secret: str, content: str = "Say hello.", **extra: Any) -> httpx.Response:
    """One Anthropic message through the gateway with ``secret``."""
    body = {
        "model": CLAUDE,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }
    headers = {"x-api-key": secret, "user-agent": USER_AGENT, "anthropic-version": "2023-06-01"}
    return httpx.post(url + "/v1/messages", json=body, headers=headers, timeout=10)


def cost(input_tokens: int, output_tokens: int) -> Decimal:
    """What ``PRICE`` charges for these tokens."""
    return (Decimal(input_tokens) * 1 + Decimal(output_tokens) * 2) / 1_000_000


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def spend_record(
    request_id: str,
    ts: datetime,
    *,
    key_id: str | None = "key_a",
    project_id: str | None = "proj_a",
    model: str | None = GPT,
    provider: str | None = "oa",
    endpoint: str = "chat.completions",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cost_usd: Decimal = Decimal("0.00002"),
    status: int = 200,
    metadata: dict[str, Any] | None = None,
    priced: bool = True,
    count_request: bool = False,
) -> dict[str, Any]:
    """A journal record as the meter writes one."""
    return {
        "request_id": request_id,
        "ts": ts.astimezone(UTC).isoformat(),
        "key_id": key_id,
        "project_id": project_id,
        "endpoint": endpoint,
        "model": model,
        "provider": provider,
        "upstream_model": f"{model}-upstream" if model else None,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": str(cost_usd),
        "priced": priced,
        "estimated": False,
        "status": status,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "stream": False,
        "cached": False,
        "error": None if status < 400 else "upstream_error",
        "attempts": 1,
        "metadata": metadata or {},
        "count_request": count_request,
        "user_agent": USER_AGENT,
    }


async def write(
    db: Database, records: list[dict[str, Any]], bodies: list[dict[str, Any]] | None = None
) -> None:
    """Store journal records through the spend writer's insert."""
    from tollway.metering.spend_effects import body_row

    await insert_rows(db, [to_row(r) for r in records], [body_row(b) for b in bodies or []])


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    """One value of a query."""
    async with db.reader() as session:
        return (await session.execute(text(sql), params)).scalar()


def run(coroutine: Any) -> Any:
    """Run a coroutine from a synchronous test."""
    return asyncio.run(coroutine)
