"""Kill switches, policies and model groups on a real PostgreSQL: a two-worker gateway,
two more processes holding warm ``SwitchBoard``s, the one-query epochs read of the
async engine, and JSON policy columns."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keys_support import (
    MASTER_KEY,
    PYTHON,
    ServedGateway,
    management_error,
    new_key,
    new_project,
    ok,
    write_config,
)
from pg_support import fresh_database, query
from pg_support import url as pg_url

from fake_upstream import FakeUpstream
from served import clean_env
from tollway.auth.directory import CachePolicy, GuardSetting, KeyDirectory
from tollway.auth.secrets import ServerKeys
from tollway.settings import load_settings
from tollway.store.db import Database

PROBE = str(Path(__file__).with_name("switch_probe.py"))
GROUPS = {"cheap": ["gpt-mini"]}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """This module's database."""
    with fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def pgw(
    pg_database: str, upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """A two-worker gateway on Postgres."""
    tmp = tmp_path_factory.mktemp("switches-pg")
    config = write_config(
        tmp / "cfg.yaml",
        tmp / "data",
        upstream_server,
        database_url=pg_url(pg_database),
        model_groups=GROUPS,
    )
    gateway = ServedGateway(config, tmp / "data", workers=2).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def api(pgw: ServedGateway) -> Iterator[httpx.Client]:
    """Its management API as the master key."""
    with pgw.admin() as client:
        yield client


def probe(database: str) -> subprocess.Popen[str]:
    """A process with a warm SwitchBoard on the database (see switch_probe.py)."""
    return subprocess.Popen(
        [PYTHON, PROBE, pg_url(database), "an", "oa", "gpt-big"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def check(process: subprocess.Popen[str]) -> dict[str, Any]:
    """One check by a probe."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("check\n")
    process.stdin.flush()
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    return answer


def test_switches_on_postgres(pg_database: str, api: httpx.Client) -> None:
    probes = [probe(pg_database), probe(pg_database)]
    try:
        for process in probes:
            assert check(process)["proxy"] is True
        (before,) = query(pg_database, "SELECT value FROM epochs WHERE name = 'switches'")

        answer = ok(
            api.patch("/switches", json={"proxy": False, "deployments": {"oa/gpt-big": False}})
        )
        assert answer["proxy"] is False and answer["deployments"]["oa/gpt-big"] is False
        for process in probes:
            seen = check(process)
            assert seen["reloaded"] and not seen["proxy"] and not seen["deployment"], seen
            assert seen["provider"] is True
            assert seen["epochs"][1] == before["value"] + 1

        (row,) = query(pg_database, "SELECT * FROM switches WHERE name = 'proxy'")
        assert row["enabled"] is False and row["changed_by"] == "master"
        entries = ok(api.get("/audit", params={"action": "switch.changed"}))
        assert {(e["target_id"], e["details"]["after"]) for e in entries} >= {
            ("proxy", False),
            ("deployment:oa/gpt-big", False),
        }

        error = management_error(api.patch("/switches", json={"providers": {"zz": False}}), 400)
        assert error["param"] == "providers.zz"

        ok(api.patch("/switches", json={"proxy": True, "deployments": {"oa/gpt-big": True}}))
        for process in probes:
            seen = check(process)
            assert seen["proxy"] and seen["deployment"] and seen["off"] == [], seen
        assert ok(api.get("/audit/verify"))["ok"] is True
    finally:
        for process in probes:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(10)


async def test_policies_on_postgres(pgw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(
        api,
        "pg-policies",
        models=["group:cheap", "claude-*"],
        guards={"pii": {"action": "redact", "kinds": ["email", "iban"], "private_ips": True}},
        cors_origins=["HTTP://LOCALHOST:3000", "http://localhost:80"],
        cache={"enabled": True},
    )
    assert project["cors_origins"] == ["http://localhost:3000", "http://localhost"]
    assert project["cache"] == {"enabled": True, "ttl": None}
    key = new_key(api, name="pg policy", project="pg-policies", guards={"pii": {"action": "off"}})
    assert ok(api.get(f"/keys/{key['id']}"))["guards"] == {"pii": {"action": "off"}}
    # Postgres refuses NUL in text, JSON included: a 4xx before it gets there.
    error = management_error(
        api.patch(
            "/projects/pg-policies", json={"guards": {"pii": {"action": "flag", "x": "a\u0000"}}}
        ),
        (400, 422),
    )
    assert error["param"].startswith("guards")
    error = management_error(api.patch("/projects/pg-policies", json={"models": ["group:x"]}), 400)
    assert error["param"] == "models"

    settings = load_settings(pgw.config)
    db = Database(settings.database_path_url)
    directory = KeyDirectory(
        db, ServerKeys.from_settings(settings), MASTER_KEY, model_groups=settings.model_groups
    )
    try:
        epochs = await directory.epochs()  # the async engine's one query
        entry = (await directory.authenticate({"x-api-key": key["key"]}, epochs)).key
    finally:
        await db.aclose()
    assert entry is not None
    assert entry.project_policy.cache == CachePolicy(True, None)
    assert entry.project_policy.guards["pii"] == GuardSetting(
        "redact", {"kinds": ["email", "iban"], "private_ips": True}
    )
    assert dict(entry.guards) == {"pii": GuardSetting("off", {})}
    assert entry.project_models == ("gpt-mini", "claude-*")
    assert entry.allows("gpt-mini") and entry.allows("claude-small")
    assert not entry.allows("gpt-big")
