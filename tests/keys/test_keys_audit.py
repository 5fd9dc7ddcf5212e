"""The hash-chained audit log: every admin action, filters, verification, tampering.

This module runs its own gateway so that sequence numbers are known exactly.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from keys_support import (
    GPT,
    MASTER_KEY,
    ServedGateway,
    created,
    launch,
    new_key,
    new_project,
    ok,
    run_clis,
)

from fake_upstream import FakeUpstream

CREDENTIAL = "sk-proj-AUDIT-never-logged-77aa"


@pytest.fixture(scope="module")
def agw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """A gateway with an empty audit log."""
    gateway = launch(tmp_path_factory.mktemp("audit"), upstream_server)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def trail(agw: ServedGateway) -> dict[str, Any]:
    """Perform one of each admin action, in a known order (sequence numbers 1..9)."""
    with agw.admin() as api:
        project = new_project(api, "audited", credentials={"oa": CREDENTIAL})  # 1
        key = new_key(api, name="k1", project="audited", models=[GPT], metadata={"o": "a"})  # 2
        ok(api.patch(f"/keys/{key['id']}", json={"rpm": 5}))  # 3
        ok(api.delete(f"/keys/{key['id']}"))  # 4
        ok(api.patch("/projects/audited", json={"tpm": 50}))  # 5
        ok(api.post("/projects/audited/revoke-keys"))  # 6
        admin = created(api.post("/admin-keys", json={"name": "ops", "role": "operator"}))  # 7
        victim = created(api.post("/admin-keys", json={"name": "gone", "role": "viewer"}))  # 8
        ok(api.delete(f"/admin-keys/{victim['id']}"))  # 9
    with agw.admin(admin["key"]) as operator:
        by_operator = new_key(operator, name="k2")  # 10
    return {
        "project": project,
        "key": key,
        "admin": admin,
        "victim": victim,
        "by_operator": by_operator,
    }


@pytest.fixture
def api(agw: ServedGateway) -> Iterator[httpx.Client]:
    """The audit gateway's management API as the master key."""
    with agw.admin() as client:
        yield client


def entries(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Matching entries, oldest first."""
    rows: list[dict[str, Any]] = ok(api.get("/audit", params={"limit": 1000, **params}))
    return sorted(rows, key=lambda row: row["seq"])


def verify(api: httpx.Client) -> dict[str, Any]:
    """``GET /api/v1/audit/verify``."""
    result: dict[str, Any] = ok(api.get("/audit/verify"))
    return result


def cli_verify(agw: ServedGateway) -> tuple[Any, Any]:
    """``tollway audit verify`` against the audit gateway, plain and with ``--json``."""
    command = ("audit", "--url", agw.url, "--master-key", MASTER_KEY, "verify")
    plain, as_json = run_clis(command, (*command, "--json"))
    return plain, as_json


@contextlib.contextmanager
def database(agw: ServedGateway) -> Iterator[sqlite3.Connection]:
    """A direct, autocommitting connection to the gateway's database."""
    conn = sqlite3.connect(agw.db_path, timeout=10.0, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def test_every_admin_action_is_audited(api: httpx.Client, trail: dict[str, Any]) -> None:
    rows = entries(api)
    assert [row["seq"] for row in rows] == list(range(1, 11))
    project, key = trail["project"]["id"], trail["key"]["id"]
    admin, victim = trail["admin"]["id"], trail["victim"]["id"]
    operator = f"admin_key:{admin}"
    assert [(r["actor"], r["action"], r["target_type"], r["target_id"]) for r in rows] == [
        ("master", "project.created", "project", project),
        ("master", "key.created", "key", key),
        ("master", "key.updated", "key", key),
        ("master", "key.revoked", "key", key),
        ("master", "project.updated", "project", project),
        ("master", "project.keys_revoked", "project", project),
        ("master", "admin_key.created", "admin_key", admin),
        ("master", "admin_key.created", "admin_key", victim),
        ("master", "admin_key.revoked", "admin_key", victim),
        (operator, "key.created", "key", trail["by_operator"]["id"]),
    ]
    details = {row["seq"]: row["details"] for row in rows}
    assert details[1]["name"] == "audited"
    assert details[1]["credential_providers"] == ["oa"]
    assert details[2]["name"] == "k1" and details[2]["models"] == [GPT]
    assert details[2]["metadata"] == {"o": "a"}
    assert details[3] == {"changes": {"rpm": 5}}
    assert details[6] == {"revoked": 0}, "the key was already revoked"
    assert details[7] == {"name": "ops", "role": "operator"}
    for row in rows:
        assert len(row["hash"]) == 64
        datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))

    text = api.get("/audit", params={"limit": 1000}).text
    for secret in (CREDENTIAL, trail["key"]["key"], trail["admin"]["key"], MASTER_KEY):
        assert secret not in text


def test_newest_first_with_limit_and_offset(api: httpx.Client, trail: dict[str, Any]) -> None:
    first = ok(api.get("/audit", params={"limit": 3}))
    assert [row["seq"] for row in first] == [10, 9, 8]
    second = ok(api.get("/audit", params={"limit": 3, "offset": 3}))
    assert [row["seq"] for row in second] == [7, 6, 5]


def test_filters(api: httpx.Client, trail: dict[str, Any]) -> None:
    key, project = trail["key"]["id"], trail["project"]["id"]
    operator = f"admin_key:{trail['admin']['id']}"

    assert [r["seq"] for r in entries(api, actor=operator)] == [10]
    assert [r["seq"] for r in entries(api, actor="master")] == list(range(1, 10))
    assert [r["seq"] for r in entries(api, action="key.created")] == [2, 10]
    assert [r["seq"] for r in entries(api, target=key)] == [2, 3, 4]
    assert [r["seq"] for r in entries(api, target=project)] == [1, 5, 6]
    assert [r["seq"] for r in entries(api, target=key, action="key.revoked")] == [4]
    assert entries(api, actor="nobody") == []

    rows = entries(api)
    fourth = rows[3]["ts"]
    assert [r["seq"] for r in entries(api, **{"from": fourth})] == list(range(4, 11))
    assert [r["seq"] for r in entries(api, to=fourth)] == [1, 2, 3]
    assert [r["seq"] for r in entries(api, **{"from": rows[1]["ts"], "to": fourth})] == [2, 3]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert entries(api, **{"from": later}) == []
    assert len(entries(api, to=later)) == 10


def test_time_filters_honour_the_offset(api: httpx.Client, trail: dict[str, Any]) -> None:
    rows = entries(api)
    fourth = datetime.fromisoformat(rows[3]["ts"].replace("Z", "+00:00"))
    for hours in (5, -5):
        shifted = fourth.astimezone(timezone(timedelta(hours=hours))).isoformat()
        assert [r["seq"] for r in entries(api, **{"from": shifted})] == list(range(4, 11))
        assert [r["seq"] for r in entries(api, to=shifted)] == [1, 2, 3]


def test_verify_ok_over_the_api_and_the_cli(
    agw: ServedGateway, api: httpx.Client, trail: dict[str, Any]
) -> None:
    assert verify(api) == {"ok": True, "entries": 10, "broken_at": None, "reason": None}
    done, as_json = cli_verify(agw)
    assert done.returncode == 0, done.stderr
    assert "10 entries" in done.stdout
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["ok"] is True


def _assert_broken(agw: ServedGateway, api: httpx.Client, seq: int, cli: bool = True) -> None:
    result = verify(api)
    assert result["ok"] is False, result
    assert result["broken_at"] == seq, result
    assert result["reason"]
    if not cli:
        return
    failed, as_json = cli_verify(agw)
    assert failed.returncode == 1, failed
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, failed.stderr
    assert f"entry {seq}" in lines[0]
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["broken_at"] == seq


@contextlib.contextmanager
def edited(agw: ServedGateway, seq: int, column: str, value: Any) -> Iterator[None]:
    """Change one column of one entry, and put the original back afterwards."""
    with database(agw) as conn:
        (original,) = conn.execute(
            f"SELECT {column} FROM audit_log WHERE seq = ?",
            (seq,),
        ).fetchone()
        conn.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = ?", (value, seq))
    try:
        yield
    finally:
        with database(agw) as conn:
            conn.execute(
                f"UPDATE audit_log SET {column} = ? WHERE seq = ?",
                (original, seq),
            )


@contextlib.contextmanager
def deleted(agw: ServedGateway, seq: int) -> Iterator[None]:
    """Delete one entry, and put it back afterwards."""
    with database(agw) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone())
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    try:
        yield
    finally:
        with database(agw) as conn:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(
                f"INSERT INTO audit_log ({names}) VALUES ({marks})",
                tuple(row.values()),
            )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", json.dumps({"name": "k1-renamed"})),
        ("actor", "someone-else"),
        ("action", "key.updated"),
        ("target_id", "key_0000000000000000"),
        ("ts", "2020-01-01 00:00:00.000000"),
    ],
)
def test_edited_entry_is_detected(
    agw: ServedGateway, api: httpx.Client, trail: dict[str, Any], column: str, value: str
) -> None:
    with edited(agw, 2, column, value):
        _assert_broken(agw, api, 2, cli=column == "details")
        # What the API shows is the edited row: the chain is what exposes it.
        assert verify(api)["entries"] == 1
    assert verify(api)["ok"] is True


def test_rehashed_entry_without_the_server_secret_is_detected(
    agw: ServedGateway, api: httpx.Client, trail: dict[str, Any]
) -> None:
    with edited(agw, 5, "hash", "f" * 64):
        _assert_broken(agw, api, 5, cli=False)
    with edited(agw, 5, "prev_hash", "0" * 64):
        _assert_broken(agw, api, 5, cli=False)
    assert verify(api)["ok"] is True


def test_deleted_last_entry_is_detected(
    agw: ServedGateway, api: httpx.Client, trail: dict[str, Any]
) -> None:
    with deleted(agw, 10):
        _assert_broken(agw, api, 10)
    assert verify(api)["ok"] is True


def test_deleted_middle_entry_is_detected(
    agw: ServedGateway, api: httpx.Client, trail: dict[str, Any]
) -> None:
    with deleted(agw, 6):
        _assert_broken(agw, api, 6, cli=False)
    assert verify(api)["ok"] is True


def test_cli_audit_list(agw: ServedGateway, trail: dict[str, Any]) -> None:
    common = ("audit", "--url", agw.url, "--master-key", MASTER_KEY, "list")
    listed, by_target, table = run_clis(
        (*common, "--json", "--action", "key.created"),
        (*common, "--json", "--target", trail["key"]["id"], "--limit", "2"),
        common,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["seq"] for row in rows] == [10, 2]
    assert [row["seq"] for row in json.loads(by_target.stdout)] == [4, 3]
    assert table.returncode == 0
    assert "project.keys_revoked" in table.stdout


def test_audit_log_file_has_no_secret(agw: ServedGateway, trail: dict[str, Any]) -> None:
    log = agw.log_text()
    for secret in (CREDENTIAL, trail["key"]["key"], trail["admin"]["key"], MASTER_KEY):
        assert secret not in log
    assert Path(agw.db_path).is_file()
