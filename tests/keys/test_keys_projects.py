"""Projects: create, list, show, update, (de)activate, bulk revoke, own credentials."""

from __future__ import annotations

import sqlite3

import anthropic
import httpx
import openai
import pytest
from keys_support import (
    CLAUDE,
    GLOBAL_ANTHROPIC_KEY,
    GLOBAL_OPENAI_KEY,
    ServedGateway,
    chat,
    management_error,
    message,
    new_key,
    new_project,
    ok,
    stable,
    unique,
)

from fake_upstream import TEXT, FakeUpstream

PROJECT_OPENAI_KEY = "sk-proj-OPENAI-plaintext-3c7e1a9f5b"
PROJECT_ANTHROPIC_KEY = "sk-proj-ANTHROPIC-plaintext-8d2b6f4a0e"


def test_create_list_show_update(api: httpx.Client) -> None:
    name = unique("team")
    project = new_project(
        api,
        name,
        max_budget_usd="100",
        budget_period="day",
        rpm=60,
        tpm=6000,
        max_parallel=3,
        metadata={"org": "acme"},
    )
    assert project["id"].startswith("proj_")
    assert project["name"] == name
    assert project["active"] is True
    assert float(project["max_budget_usd"]) == 100
    assert project["budget_period"] == "day"
    assert (project["rpm"], project["tpm"], project["max_parallel"]) == (60, 6000, 3)
    assert project["metadata"] == {"org": "acme"}
    assert project["credential_providers"] == []

    assert stable(ok(api.get(f"/projects/{project['id']}"))) == stable(project)
    assert stable(ok(api.get(f"/projects/{name}"))) == stable(project)
    listed = ok(api.get("/projects"))
    assert stable(project) in [stable(row) for row in listed]
    assert "default" in {row["name"] for row in listed}

    updated = ok(api.patch(f"/projects/{name}", json={"rpm": 120, "metadata": {"org": "globex"}}))
    assert updated["rpm"] == 120
    assert updated["metadata"] == {"org": "globex"}
    assert updated["tpm"] == 6000, "fields not sent must not change"
    assert stable(ok(api.get(f"/projects/{project['id']}"))) == stable(updated)

    management_error(api.get("/projects/" + unique("missing")), 404)


def test_active_filter_on_projects(api: httpx.Client) -> None:
    on = new_project(api, unique("on"))
    off = new_project(api, unique("off"))
    ok(api.patch(f"/projects/{off['id']}", json={"active": False}))
    active = {row["id"] for row in ok(api.get("/projects", params={"active": "true"}))}
    inactive = {row["id"] for row in ok(api.get("/projects", params={"active": "false"}))}
    assert on["id"] in active and on["id"] not in inactive
    assert off["id"] in inactive and off["id"] not in active


def test_deactivated_project_blocks_its_keys_until_reactivated(
    gw: ServedGateway, api: httpx.Client
) -> None:
    project = new_project(api, unique("switch"))
    key = new_key(api, project=project["name"])["key"]
    other = new_key(api)["key"]
    assert chat(gw, key).choices[0].message.content == TEXT

    off = ok(api.patch(f"/projects/{project['id']}", json={"active": False}))
    assert off["active"] is False
    with pytest.raises(openai.AuthenticationError) as blocked:
        chat(gw, key)
    assert project["name"] in blocked.value.message
    with pytest.raises(anthropic.AuthenticationError):
        message(gw, key)
    assert chat(gw, other).choices[0].message.content == TEXT, "other projects are unaffected"

    refused = api.post("/keys", json={"name": "late", "project": project["name"]})
    assert management_error(refused, 400)["param"] == "project"

    ok(api.patch(f"/projects/{project['id']}", json={"active": True}))
    assert chat(gw, key).choices[0].message.content == TEXT
    assert message(gw, key).content[0].text == TEXT


def test_key_of_a_deactivated_project_is_not_listed_as_active(api: httpx.Client) -> None:
    project = new_project(api, unique("dormant"))
    body = new_key(api, project=project["name"])
    ok(api.patch(f"/projects/{project['id']}", json={"active": False}))
    active = ok(api.get("/keys", params={"project": project["id"], "active": "true"}))
    assert body["id"] not in {row["id"] for row in active}
    assert ok(api.get(f"/keys/{body['id']}"))["status"] != "active"


def test_revoke_keys_revokes_every_key_of_the_project(gw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(api, unique("bulk"))
    keys = [new_key(api, project=project["name"]) for _ in range(3)]
    already = keys[2]
    ok(api.delete(f"/keys/{already['id']}"))
    bystander = new_key(api)
    for body in keys[:2]:
        chat(gw, body["key"])

    result = ok(api.post(f"/projects/{project['name']}/revoke-keys"))
    assert result == {"project_id": project["id"], "revoked": 2}
    for body in keys:
        with pytest.raises(openai.AuthenticationError):
            chat(gw, body["key"])
        assert ok(api.get(f"/keys/{body['id']}"))["status"] == "revoked"
    assert chat(gw, bystander["key"]).choices[0].message.content == TEXT

    # The project itself stays usable for new keys.
    fresh = new_key(api, project=project["id"])
    assert chat(gw, fresh["key"]).choices[0].message.content == TEXT
    assert ok(api.post(f"/projects/{project['id']}/revoke-keys"))["revoked"] == 1


def test_project_credentials_are_used_upstream_sealed_and_never_shown(
    gw: ServedGateway, api: httpx.Client, upstream: FakeUpstream
) -> None:
    name = unique("byok")
    project = new_project(api, name, credentials={"oa": PROJECT_OPENAI_KEY})
    assert project["credential_providers"] == ["oa"]
    own = new_key(api, project=name)["key"]
    shared = new_key(api)["key"]

    chat(gw, own)
    assert upstream.last().headers["authorization"] == f"Bearer {PROJECT_OPENAI_KEY}"
    message(gw, own, CLAUDE)
    assert upstream.last().headers["x-api-key"] == GLOBAL_ANTHROPIC_KEY, "no 'an' credential"
    chat(gw, shared)
    assert upstream.last().headers["authorization"] == f"Bearer {GLOBAL_OPENAI_KEY}"

    updated = ok(
        api.patch(
            f"/projects/{project['id']}",
            json={"credentials": {"oa": PROJECT_OPENAI_KEY, "an": PROJECT_ANTHROPIC_KEY}},
        )
    )
    assert updated["credential_providers"] == ["an", "oa"]
    message(gw, own, CLAUDE)
    assert upstream.last().headers["x-api-key"] == PROJECT_ANTHROPIC_KEY
    chat(gw, own)
    assert upstream.last().headers["authorization"] == f"Bearer {PROJECT_OPENAI_KEY}"

    # Never returned, never audited, never logged.
    texts = {
        "show": api.get(f"/projects/{name}").text,
        "list": api.get("/projects").text,
        "audit": api.get("/audit", params={"limit": 1000}).text,
        "log": gw.log_text(),
    }
    for where, text in texts.items():
        assert PROJECT_OPENAI_KEY not in text, where
        assert PROJECT_ANTHROPIC_KEY not in text, where
    shown = ok(api.get(f"/projects/{name}"))
    assert "credentials" not in shown
    assert shown["credential_providers"] == ["an", "oa"]

    # Stored encrypted: the raw column is sealed, and no byte of the file has the plaintext.
    conn = sqlite3.connect(gw.db_path)
    try:
        (sealed,) = conn.execute(
            "SELECT credentials FROM projects WHERE id = ?", (project["id"],)
        ).fetchone()
    finally:
        conn.close()
    assert sealed and sealed.startswith("v1:")
    assert PROJECT_OPENAI_KEY not in sealed and PROJECT_ANTHROPIC_KEY not in sealed
    assert "plaintext" not in sealed
    for path in gw.data_dir.glob("tollway.db*"):
        raw = path.read_bytes()
        assert PROJECT_OPENAI_KEY.encode() not in raw, path.name
        assert PROJECT_ANTHROPIC_KEY.encode() not in raw, path.name

    # Clearing the credentials falls back to the global keys.
    cleared = ok(api.patch(f"/projects/{project['id']}", json={"credentials": {}}))
    assert cleared["credential_providers"] == []
    chat(gw, own)
    assert upstream.last().headers["authorization"] == f"Bearer {GLOBAL_OPENAI_KEY}"


def test_credentials_for_an_unknown_provider_are_refused(api: httpx.Client) -> None:
    response = api.post(
        "/projects", json={"name": unique("typo"), "credentials": {"openia": "sk-proj-x"}}
    )
    assert management_error(response, (400, 422))["param"].startswith("credentials")


@pytest.mark.parametrize(
    "value",
    ["", "   ", "sk-proj-abc\r\nX-Injected: 1", "sk-proj-\u0000abc"],
    ids=["empty", "blank", "crlf", "nul"],
)
def test_unusable_credentials_are_refused(api: httpx.Client, value: str) -> None:
    response = api.post("/projects", json={"name": unique("cred"), "credentials": {"oa": value}})
    assert management_error(response, (400, 422))["param"].startswith("credentials")


def test_key_of_a_named_project_uses_it(api: httpx.Client) -> None:
    project = new_project(api, unique("owner"))
    by_name = new_key(api, project=project["name"])
    by_id = new_key(api, project=project["id"])
    assert by_name["project_id"] == by_id["project_id"] == project["id"]
