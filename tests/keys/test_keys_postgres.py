"""Migrations and the key lifecycle on a real PostgreSQL (127.0.0.1:5432).

A database named ``tollway_test_<random hex>`` is created for the run and dropped at
the end. Without a reachable Postgres these tests skip, saying why, except under
``CI=true``, where they fail: CI must not pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest
from keys_support import (
    CLAUDE,
    GPT,
    GPT_BIG,
    ServedGateway,
    chat,
    management_error,
    message,
    new_key,
    new_project,
    ok,
    run_cli,
    wait_until,
    write_config,
)

from fake_upstream import TEXT, FakeUpstream

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DATABASE = "test"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Postgres tests must run, not skip)")
    pytest.skip(reason)


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(database=ADMIN_DATABASE, timeout=5, **PG)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _query(database: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(database=database, timeout=5, **PG)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(database: str, sql: str, *args: Any) -> list[Any]:
    """Rows of ``sql`` in ``database`` (a fresh connection each time)."""
    return asyncio.run(_query(database, sql, *args))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A new, uniquely named database; dropped afterwards."""
    name = f"tollway_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL at 127.0.0.1:5432 (database 'test') is unreachable: {exc!r}")
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def pg_config(
    pg_database: str, upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A gateway config pointing at the run's Postgres database."""
    tmp = tmp_path_factory.mktemp("postgres")
    return write_config(
        tmp / "cfg.yaml",
        tmp / "data",
        upstream_server,
        database_url=f"postgresql://postgres@127.0.0.1:5432/{pg_database}",
    )


@pytest.fixture(scope="module")
def pgw(pg_config: Path) -> Iterator[ServedGateway]:
    """A gateway on Postgres (started after the migrate test has run, when in order)."""
    gateway = ServedGateway(pg_config, pg_config.parent / "data").start()
    yield gateway
    gateway.stop()


@pytest.fixture
def api(pgw: ServedGateway) -> Iterator[httpx.Client]:
    """The Postgres gateway's management API as the master key."""
    with pgw.admin() as client:
        yield client


def test_migrate_on_postgres(pg_database: str, pg_config: Path) -> None:
    from tollway.store.migrate import head_revision

    done = run_cli("migrate", "--config", str(pg_config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"database at revision {head_revision()}"
    again = run_cli("migrate", "--config", str(pg_config))
    assert again.returncode == 0 and again.stdout == done.stdout, again.stderr

    tables = {
        row["table_name"]
        for row in query(
            pg_database,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
    }
    assert {"keys", "projects", "admin_keys", "audit_log", "audit_head", "epochs"} <= tables
    (version,) = query(pg_database, "SELECT version_num FROM alembic_version")
    assert version["version_num"] == head_revision()
    projects = query(pg_database, "SELECT id, name FROM projects")
    assert [(row["id"], row["name"]) for row in projects] == [("proj_default", "default")]


def test_key_lifecycle_on_postgres(pgw: ServedGateway, api: httpx.Client, pg_database: str) -> None:
    project = new_project(api, "pg-team", credentials={"oa": "sk-proj-PG-plaintext-0101"})
    body = new_key(
        api,
        name="pg key",
        project="pg-team",
        ttl="1h",
        models=[GPT, "claude-*"],
        metadata={"org": "acme"},
    )
    key, key_id = body["key"], body["id"]
    assert chat(pgw, key).choices[0].message.content == TEXT
    assert message(pgw, key, CLAUDE).content[0].text == TEXT
    with pytest.raises(openai.PermissionDeniedError):
        chat(pgw, key, GPT_BIG)

    other = new_key(api, name="pg other", metadata={"org": "globex"})
    found = ok(api.get("/keys", params={"metadata.org": "acme"}))
    assert [row["id"] for row in found] == [key_id]
    assert {row["id"] for row in ok(api.get("/keys", params={"project": "pg-team"}))} == {key_id}
    assert other["id"] in {row["id"] for row in ok(api.get("/keys", params={"active": "true"}))}

    ok(api.patch(f"/keys/{key_id}", json={"models": [GPT]}))
    with pytest.raises(anthropic.PermissionDeniedError):
        message(pgw, key, CLAUDE)

    ok(api.patch(f"/projects/{project['id']}", json={"active": False}))
    with pytest.raises(openai.AuthenticationError):
        chat(pgw, key)
    ok(api.patch(f"/projects/{project['id']}", json={"active": True}))
    assert chat(pgw, key).choices[0].message.content == TEXT

    revoked = ok(api.delete(f"/keys/{key_id}"))
    assert revoked["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        chat(pgw, key)
    with pytest.raises(anthropic.AuthenticationError):
        message(pgw, key, CLAUDE)
    assert ok(api.get(f"/keys/{key_id}"))["status"] == "revoked"

    # Only a hash is stored; the project credential is sealed.
    rows = query(pg_database, "SELECT * FROM keys WHERE id = $1", key_id)
    assert len(rows) == 1
    assert all(key[12:] not in str(value) for value in rows[0].values())
    (sealed,) = query(pg_database, "SELECT credentials FROM projects WHERE id = $1", project["id"])
    assert sealed["credentials"].startswith("v1:")
    assert "plaintext" not in sealed["credentials"]

    assert ok(api.get("/audit/verify"))["ok"] is True


def test_expiry_on_postgres(pgw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, name="pg short", ttl=2)
    chat(pgw, body["key"])
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    with pytest.raises(openai.AuthenticationError) as expired:
        chat(pgw, body["key"])
    assert "expired" in expired.value.message
    assert wait_until(
        lambda: ok(api.get("/audit", params={"target": body["id"], "action": "key.expired_on_use"}))
    )
    assert ok(api.get(f"/keys/{body['id']}"))["status"] == "expired"


def test_expires_at_with_an_offset_on_postgres(pgw: ServedGateway, api: httpx.Client) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    for hours in (5, -5):
        local = at.astimezone(timezone(timedelta(hours=hours)))
        body = new_key(api, name="pg offset", expires_at=local.isoformat())
        shown = ok(api.get(f"/keys/{body['id']}"))["expires_at"]
        assert datetime.fromisoformat(shown.replace("Z", "+00:00")) == at
        assert chat(pgw, body["key"]).choices[0].message.content == TEXT


def test_metadata_filter_matches_numbers_and_booleans_on_postgres(api: httpx.Client) -> None:
    body = new_key(api, name="pg typed", metadata={"run": "pg-typed", "tier": 3, "vip": True})
    for field, value in (("tier", "3"), ("vip", "true")):
        params = {"metadata.run": "pg-typed", f"metadata.{field}": value}
        assert [row["id"] for row in ok(api.get("/keys", params=params))] == [body["id"]]


def test_audit_time_filters_on_postgres(api: httpx.Client) -> None:
    rows = ok(api.get("/audit", params={"limit": 1000}))
    assert len(rows) >= 3
    middle = sorted(rows, key=lambda row: row["seq"])[len(rows) // 2]
    later = [row["seq"] for row in rows if row["seq"] >= middle["seq"]]
    found = ok(api.get("/audit", params={"from": middle["ts"], "limit": 1000}))
    assert sorted(row["seq"] for row in found) == sorted(later)


def test_out_of_range_limit_is_a_4xx_on_postgres(api: httpx.Client) -> None:
    response = api.post("/keys", json={"name": "big", "rpm": 2**31})
    assert response.status_code < 500, response.text
    management_error(response, (400, 422))


def test_nul_character_is_a_4xx_on_postgres(api: httpx.Client) -> None:
    response = api.post("/keys", json={"name": "nul\u0000name"})
    assert response.status_code < 500, response.text
    management_error(response, (400, 422))
