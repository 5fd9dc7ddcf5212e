"""A virtual key's life through the management API and both official SDKs."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anthropic
import httpx
import openai
import pytest
from keys_support import (
    CLAUDE,
    CLAUDE_BIG,
    CLAUDE_UPSTREAM,
    GLOBAL_ANTHROPIC_KEY,
    GLOBAL_OPENAI_KEY,
    GPT,
    GPT_BIG,
    GPT_UPSTREAM,
    MASTER_KEY,
    ServedGateway,
    chat,
    message,
    new_key,
    new_project,
    ok,
    raw_chat,
    stable,
    unique,
    wait_until,
)

from fake_upstream import TEXT, FakeUpstream


def when(value: str) -> datetime:
    """An API timestamp as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def audit_entries(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Audit entries matching ``params`` (newest first)."""
    entries: list[dict[str, Any]] = ok(api.get("/audit", params={"limit": 1000, **params}))
    return entries


# --------------------------------------------------------------------------- create


def test_create_returns_every_field_and_the_secret_once(api: httpx.Client) -> None:
    before = datetime.now(UTC)
    body = new_key(
        api,
        name="agent session 1",
        project="default",
        ttl="24h",
        models=[GPT, "claude-*"],
        max_budget_usd="12.5",
        budget_period="month",
        rpm=100,
        tpm=10_000,
        max_parallel=4,
        max_requests=1000,
        metadata={"org": "acme", "session": "s-1", "user": "u-7"},
    )
    key = body["key"]
    assert key.startswith("sk-tw-")
    assert len(key) >= len("sk-tw-") + 22  # at least 128 random bits in URL-safe base64
    assert body["key_prefix"] == key[: len(body["key_prefix"])]
    assert len(body["key_prefix"]) < len(key) - 16
    assert body["id"].startswith("key_")
    assert body["name"] == "agent session 1"
    assert body["project_id"] == "proj_default"
    assert body["status"] == "active" and body["active"] is True
    assert body["revoked_at"] is None
    assert body["models"] == [GPT, "claude-*"]
    assert float(body["max_budget_usd"]) == 12.5
    assert body["budget_period"] == "month"
    assert (body["rpm"], body["tpm"], body["max_parallel"]) == (100, 10_000, 4)
    assert body["max_requests"] == 1000 and body["request_count"] == 0
    assert body["metadata"] == {"org": "acme", "session": "s-1", "user": "u-7"}
    assert body["created_by"] == "master"
    expires = when(body["expires_at"])
    assert before + timedelta(hours=24) - timedelta(seconds=5) <= expires
    assert expires <= datetime.now(UTC) + timedelta(hours=24, seconds=5)

    shown = ok(api.get(f"/keys/{body['id']}"))
    assert "key" not in shown
    assert key not in api.get(f"/keys/{body['id']}").text
    assert stable(body) == stable(shown)
    listing = api.get("/keys", params={"limit": 1000})
    assert body["id"] in listing.text
    assert key not in listing.text
    assert all("key" not in row for row in listing.json())


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("90s", 90), ("15m", 900), ("24h", 86_400), ("7d", 604_800), (3600, 3600), ("120", 120)],
)
def test_ttl_forms(api: httpx.Client, ttl: str | int, seconds: int) -> None:
    body = new_key(api, ttl=ttl)
    lifetime = when(body["expires_at"]) - when(body["created_at"])
    assert abs(lifetime.total_seconds() - seconds) < 2, body


def test_expires_at_is_kept(api: httpx.Client) -> None:
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = new_key(api, expires_at=at.isoformat())
    assert when(body["expires_at"]) == at


def test_no_ttl_means_no_expiry(api: httpx.Client) -> None:
    assert new_key(api)["expires_at"] is None


def test_expires_at_with_an_offset_is_the_same_instant(
    gw: ServedGateway, api: httpx.Client
) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    for hours in (5, -5):
        local = at.astimezone(timezone(timedelta(hours=hours)))
        body = new_key(api, expires_at=local.isoformat())
        assert when(ok(api.get(f"/keys/{body['id']}"))["expires_at"]) == at
        assert chat(gw, body["key"]).choices[0].message.content == TEXT


# --------------------------------------------------------------------------- use


def test_key_works_with_both_sdks_within_its_models(
    gw: ServedGateway, api: httpx.Client, upstream: FakeUpstream
) -> None:
    key = new_key(api, models=[GPT, "claude-s*"])["key"]

    completion = chat(gw, key, GPT)
    assert completion.choices[0].message.content == TEXT
    assert completion.model == GPT_UPSTREAM
    sent = upstream.last("/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {GLOBAL_OPENAI_KEY}"
    assert key not in str(sent.headers)

    reply = message(gw, key, CLAUDE)
    assert reply.content[0].text == TEXT
    assert reply.model == CLAUDE_UPSTREAM
    sent = upstream.last("/v1/messages")
    assert sent.headers["x-api-key"] == GLOBAL_ANTHROPIC_KEY
    assert key not in str(sent.headers)

    calls = len(upstream.requests)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(gw, key, GPT_BIG)
    assert denied.value.status_code == 403
    assert GPT_BIG in denied.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        message(gw, key, CLAUDE_BIG)
    assert refused.value.status_code == 403
    assert len(upstream.requests) == calls, "a refused call must not reach the upstream"


@pytest.mark.parametrize(
    "header",
    ["authorization", "x-api-key", "api-key", "x-goog-api-key"],
)
def test_key_accepted_in_every_sdk_header(
    gw: ServedGateway, api: httpx.Client, upstream: FakeUpstream, header: str
) -> None:
    key = new_key(api)["key"]
    value = f"Bearer {key}" if header == "authorization" else key
    response = raw_chat(gw.url, {header: value})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == TEXT
    # The same header with a key that does not exist is refused.
    bogus = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    value = f"Bearer {bogus}" if header == "authorization" else bogus
    refused = raw_chat(gw.url, {header: value})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_missing_or_malformed_key_is_401(gw: ServedGateway, api: httpx.Client) -> None:
    key = new_key(api)["key"]
    for headers in (
        {},
        {"authorization": f"Basic {key}"},
        {"authorization": "Bearer"},
        {"x-api-key": ""},
    ):
        response = raw_chat(gw.url, headers)
        assert response.status_code == 401, (headers, response.text)
        assert key not in response.text


# --------------------------------------------------------------------------- revoke


def test_revoke_is_immediate_and_keeps_the_row(gw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, name=unique("revoked"))
    key, key_id = body["key"], body["id"]
    chat(gw, key)
    message(gw, key)

    revoked = ok(api.delete(f"/keys/{key_id}"))
    assert revoked["status"] == "revoked"
    assert revoked["active"] is False
    assert revoked["revoked_at"] is not None
    assert "key" not in revoked

    with pytest.raises(openai.AuthenticationError) as first:
        chat(gw, key)
    assert first.value.status_code == 401
    assert "revoked" in first.value.message
    with pytest.raises(anthropic.AuthenticationError):
        message(gw, key)

    shown = ok(api.get(f"/keys/{key_id}"))
    assert shown["status"] == "revoked"
    inactive = ok(api.get("/keys", params={"active": "false", "limit": 1000}))
    assert key_id in {row["id"] for row in inactive}
    active = ok(api.get("/keys", params={"active": "true", "limit": 1000}))
    assert key_id not in {row["id"] for row in active}

    # Revoking again is harmless and is not audited twice.
    assert ok(api.delete(f"/keys/{key_id}"))["status"] == "revoked"
    entries = audit_entries(api, target=key_id, action="key.revoked")
    assert len(entries) == 1


# --------------------------------------------------------------------------- expiry


def test_expired_key_is_refused_and_audited_once(gw: ServedGateway, api: httpx.Client) -> None:
    keys = []
    for fields in (
        {"ttl": 3},
        {"ttl": "3s"},
        {"expires_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat()},
    ):
        body = new_key(api, name=unique("short"), **fields)
        assert chat(gw, body["key"]).choices[0].message.content == TEXT
        keys.append(body)
    deadline = max(when(body["expires_at"]) for body in keys)
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.2)

    for body in keys:
        with pytest.raises(openai.AuthenticationError) as expired:
            chat(gw, body["key"])
        assert "expired" in expired.value.message
        with pytest.raises(anthropic.AuthenticationError):
            message(gw, body["key"])
        assert ok(api.get(f"/keys/{body['id']}"))["status"] == "expired"

    def audited() -> bool:
        return all(
            audit_entries(api, target=body["id"], action="key.expired_on_use") for body in keys
        )

    assert wait_until(audited), "no key.expired_on_use audit entry"
    for body in keys:
        entries = audit_entries(api, target=body["id"], action="key.expired_on_use")
        assert len(entries) == 1, entries
        assert entries[0]["actor"] == "system"
        assert entries[0]["target_type"] == "key"

    expired_ids = {row["id"] for row in ok(api.get("/keys", params={"active": "false"}))}
    assert {body["id"] for body in keys} <= expired_ids


# --------------------------------------------------------------------------- max_requests


def test_max_requests_is_enforced_with_a_clear_403(gw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, max_requests=2)
    chat(gw, body["key"])
    message(gw, body["key"])
    with pytest.raises(openai.PermissionDeniedError) as spent:
        chat(gw, body["key"])
    assert spent.value.status_code == 403
    assert "2" in spent.value.message and "requests" in spent.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as again:
        message(gw, body["key"])
    assert "requests" in again.value.message
    assert ok(api.get(f"/keys/{body['id']}"))["request_count"] == 2

    # Raising the allowance lets the key work again, at once.
    ok(api.patch(f"/keys/{body['id']}", json={"max_requests": 3}))
    assert chat(gw, body["key"]).choices[0].message.content == TEXT
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, body["key"])


def test_refused_request_does_not_use_up_max_requests(gw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, max_requests=1, models=[GPT])
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, body["key"], GPT_BIG)
    chat(gw, body["key"], GPT)


# --------------------------------------------------------------------------- update


def test_patch_models_active_and_metadata(gw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, models=[GPT], metadata={"org": "acme"})
    key, key_id = body["key"], body["id"]
    with pytest.raises(anthropic.PermissionDeniedError):
        message(gw, key, CLAUDE)

    patched = ok(api.patch(f"/keys/{key_id}", json={"models": [GPT, CLAUDE]}))
    assert patched["models"] == [GPT, CLAUDE]
    assert message(gw, key, CLAUDE).content[0].text == TEXT

    ok(api.patch(f"/keys/{key_id}", json={"models": ["claude-*"]}))
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, key, GPT)

    inactive = ok(api.patch(f"/keys/{key_id}", json={"active": False}))
    assert inactive["status"] == "inactive" and inactive["active"] is False
    with pytest.raises(anthropic.AuthenticationError):
        message(gw, key, CLAUDE)

    active = ok(api.patch(f"/keys/{key_id}", json={"active": True}))
    assert active["status"] == "active"
    assert message(gw, key, CLAUDE).content[0].text == TEXT

    renamed = ok(
        api.patch(f"/keys/{key_id}", json={"name": "renamed", "metadata": {"org": "globex"}})
    )
    assert renamed["name"] == "renamed"
    assert renamed["metadata"] == {"org": "globex"}
    assert renamed["models"] == ["claude-*"], "fields not sent must not change"
    assert when(renamed["updated_at"]) > when(body["updated_at"])
    shown = ok(api.get(f"/keys/{key_id}"))
    # A key without max_requests is counted with its calls' spend records (written off
    # the request path); a read flushes them first, so it has the two calls served.
    assert shown["request_count"] == 2
    assert stable({**shown, "request_count": 0}) == stable({**renamed, "request_count": 0})

    updates = audit_entries(api, target=key_id, action="key.updated")
    assert len(updates) == 5
    assert updates[0]["details"]["changes"] == {"name": "renamed", "metadata": {"org": "globex"}}


# --------------------------------------------------------------------------- list


def test_list_filters(api: httpx.Client) -> None:
    run = unique("run")
    project = new_project(api, unique("filters"))
    acme = new_key(api, project=project["name"], metadata={"org": "acme", "run": run})
    globex = new_key(api, project=project["id"], metadata={"org": "globex", "run": run})
    elsewhere = new_key(api, metadata={"org": "acme", "run": run})
    gone = new_key(api, project=project["name"], metadata={"org": "acme", "run": run})
    ok(api.delete(f"/keys/{gone['id']}"))

    def ids(**params: Any) -> set[str]:
        rows = ok(api.get("/keys", params={"limit": 1000, **params}))
        for row in rows:
            assert "key" not in row
        return {row["id"] for row in rows}

    in_project = {acme["id"], globex["id"], gone["id"]}
    assert ids(project=project["name"]) == in_project
    assert ids(project=project["id"]) == in_project
    assert ids(project=project["name"], active="true") == {acme["id"], globex["id"]}
    assert ids(project=project["name"], active="false") == {gone["id"]}
    assert ids(**{"metadata.run": run}) == {acme["id"], globex["id"], elsewhere["id"], gone["id"]}
    assert ids(**{"metadata.run": run, "metadata.org": "acme"}) == {
        acme["id"],
        elsewhere["id"],
        gone["id"],
    }
    assert ids(**{"metadata.run": run, "metadata.org": "acme", "project": project["name"]}) == {
        acme["id"],
        gone["id"],
    }
    assert ids(**{"metadata.run": run, "metadata.org": "initech"}) == set()
    newest_first = ok(api.get("/keys", params={"metadata.run": run}))
    assert newest_first[0]["id"] == gone["id"]
    page = ok(api.get("/keys", params={"metadata.run": run, "limit": 2, "offset": 1}))
    assert [row["id"] for row in page] == [row["id"] for row in newest_first[1:3]]


def test_metadata_filter_matches_numbers_and_booleans(api: httpx.Client) -> None:
    run = unique("typed")
    body = new_key(api, metadata={"run": run, "tier": 3, "vip": True})
    for field, value in (("tier", "3"), ("vip", "true")):
        found = ok(api.get("/keys", params={"metadata.run": run, f"metadata.{field}": value}))
        assert [row["id"] for row in found] == [body["id"]], field


# --------------------------------------------------------------------------- secrecy


def test_secret_is_never_shown_logged_or_stored(gw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, name=unique("secret"), models=[GPT], metadata={"org": "acme"})
    key = body["key"]
    body_part = key[len(body["key_prefix"]) :]
    chat(gw, key)
    with pytest.raises(anthropic.PermissionDeniedError):
        message(gw, key, CLAUDE)
    ok(api.patch(f"/keys/{body['id']}", json={"metadata": {"org": "acme", "x": 1}}))
    ok(api.delete(f"/keys/{body['id']}"))
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)

    texts = {
        "GET key": api.get(f"/keys/{body['id']}").text,
        "list": api.get("/keys", params={"limit": 1000}).text,
        "audit": api.get("/audit", params={"limit": 1000}).text,
        "gateway log": gw.log_text(),
    }
    for where, text in texts.items():
        assert key not in text, where
        assert body_part not in text, where
    log = texts["gateway log"]
    for secret in (MASTER_KEY, GLOBAL_OPENAI_KEY, GLOBAL_ANTHROPIC_KEY):
        assert secret not in log

    # The database keeps a hash only: no column of any table holds the key or its body.
    conn = sqlite3.connect(gw.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    assert body_part not in text, table
        stored = conn.execute(
            "SELECT key_hash, key_prefix FROM keys WHERE id = ?", (body["id"],)
        ).fetchone()
    finally:
        conn.close()
    assert stored is not None
    assert len(stored[0]) == 64 and stored[0] != key
    assert stored[1] == body["key_prefix"]
    for path in gw.data_dir.glob("tollway.db*"):
        assert body_part.encode() not in path.read_bytes(), path.name
