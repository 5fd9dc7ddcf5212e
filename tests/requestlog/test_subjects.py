"""Export and erasure of a data subject's calls (GDPR): admin only, each in the audit
chain by a keyed hash (never the identifier), rows and bodies gone, spend totals and
budgets unchanged, other subjects untouched; API and CLI, on SQLite and Postgres."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from requestlog_support import admin, chat, new_key, new_project, ok
from typer.testing import CliRunner

from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer
from tollway.cli.main import app as cli_app

PERSON = "person-7c1d"


@pytest.fixture
def people(rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client) -> dict[str, Any]:
    """A capturing project with two people's keys and calls."""
    project = new_project(api, capture={"enabled": True})
    tag = project["name"]
    person = new_key(api, project=tag, metadata={"user": PERSON, "tag": tag})
    other = new_key(api, project=tag, metadata={"user": "someone-else", "tag": tag})
    mine = [chat(rlgw.url, person["key"]).headers["x-request-id"] for _ in range(3)]
    theirs = [chat(rlgw.url, other["key"]).headers["x-request-id"] for _ in range(2)]
    return {
        "project": project,
        "tag": tag,
        "person": person,
        "mine": mine,
        "theirs": theirs,
        "url": rlgw.url,
    }


def test_export_is_a_page_of_calls_with_bodies(people: dict[str, Any], api: httpx.Client) -> None:
    subject = {"user": PERSON, "tag": people["tag"]}
    first = ok(api.post("/subjects/export", json={"metadata": subject, "limit": 2}))
    assert [e["id"] for e in first["data"]] == list(reversed(people["mine"]))[:2]
    assert all(e["bodies"]["response"] for e in first["data"])
    rest = ok(
        api.post(
            "/subjects/export",
            json={"metadata": subject, "limit": 2, "cursor": first["next_cursor"]},
        )
    )
    assert [e["id"] for e in rest["data"]] == [people["mine"][0]] and rest["next_cursor"] is None
    audited = ok(
        api.get("/audit", params={"action": "subject.exported", "target": first["subject"]})
    )
    assert len(audited) == 2
    assert audited[0]["details"] == {"fields": ["tag", "user"], "requests": 1}
    assert PERSON not in json.dumps(audited)


def test_erasure_deletes_rows_and_bodies_and_keeps_totals(
    people: dict[str, Any], api: httpx.Client
) -> None:
    project = people["project"]["id"]
    before = ok(api.get("/spend", params={"project": project}))["totals"]
    by_user = {"project": project, "group_by": "metadata.user"}
    users = {g["group"]: g for g in ok(api.get("/spend", params=by_user))["groups"]}
    assert set(users) == {PERSON, "someone-else"}
    key_before = ok(api.get(f"/keys/{people['person']['id']}"))["spend_usd"]
    subject = {"user": PERSON, "tag": people["tag"]}
    erased = ok(api.post("/subjects/erase", json={"metadata": subject}))
    assert (erased["requests"], erased["bodies"], erased["metadata_sets"]) == (3, 3, 1)
    for request_id in people["mine"]:
        assert api.get(f"/requests/{request_id}").status_code == 404
    for request_id in people["theirs"]:
        assert ok(api.get(f"/requests/{request_id}"))["bodies"] is not None
    # Spend reports and the key's spend (budgets read the same rollups) do not change.
    assert ok(api.get("/spend", params={"project": project}))["totals"] == before
    assert ok(api.get(f"/keys/{people['person']['id']}"))["spend_usd"] == key_before
    assert Decimal(key_before["lifetime"]) > 0
    # The rollups keep the person's spend, no longer under the fields the erasure named
    # (a report by them reads only cells now: no rows are left to name the person); the
    # other person's groups are untouched.
    after = {g["group"]: g for g in ok(api.get("/spend", params=by_user))["groups"]}
    assert after == {None: {**users[PERSON], "group": None}, "someone-else": users["someone-else"]}
    assert PERSON not in json.dumps(after)
    by_tag = {"project": project, "group_by": "metadata.tag"}
    tags = {g["group"]: g["requests"] for g in ok(api.get("/spend", params=by_tag))["groups"]}
    assert tags == {people["tag"]: 2, None: 3}
    [entry] = ok(
        api.get("/audit", params={"action": "subject.erased", "target": erased["subject"]})
    )
    assert entry["details"] == {
        "fields": ["tag", "user"],
        "requests": 3,
        "bodies": 3,
        "metadata_sets": 1,
    }
    assert PERSON not in json.dumps(entry)
    assert ok(api.get("/audit/verify"))["ok"] is True
    again = ok(api.post("/subjects/erase", json={"metadata": subject}))
    assert (again["requests"], again["bodies"], again["subject"]) == (0, 0, erased["subject"])
    assert again["metadata_sets"] == 0
    # A later call of the key starts a set of its own, under the name it carries.
    assert chat(people["url"], people["person"]["key"]).status_code == 200
    later = {g["group"]: g["requests"] for g in ok(api.get("/spend", params=by_user))["groups"]}
    assert later == {None: 3, "someone-else": 2, PERSON: 1}


def test_only_admins(people: dict[str, Any], rlgw: GatewayServer, api: httpx.Client) -> None:
    for role in ("viewer", "operator"):
        secret = ok(api.post("/admin-keys", json={"name": role, "role": role}), 201)["key"]
        with admin(rlgw.url, secret) as client:
            body = {"metadata": {"user": PERSON}}
            assert client.post("/subjects/erase", json=body).status_code == 403
            assert client.post("/subjects/export", json=body).status_code == 403
    assert ok(api.get(f"/requests/{people['mine'][0]}"))["id"] == people["mine"][0]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "metadata"),
        ({"metadata": {}}, "metadata"),
        ({"metadata": {"user": 42}}, "metadata.user"),
        ({"metadata": {"user": "x"}, "extra": 1}, "extra"),
        ({"metadata": {"user": "x"}, "cursor": "junk"}, "cursor"),
        ({"metadata": {"user": "x"}, "limit": 0}, "limit"),
    ],
    ids=json.dumps,
)
def test_bad_subjects_are_a_clear_4xx(body: dict[str, Any], param: str, api: httpx.Client) -> None:
    response = api.post("/subjects/export", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["param"] == param


def test_cli_export_and_erase(people: dict[str, Any], rlgw: GatewayServer) -> None:
    connection = ["--url", rlgw.url, "--master-key", MASTER_KEY]
    meta = ["--meta", f"user={PERSON}", "--meta", f"tag={people['tag']}"]
    exported = CliRunner().invoke(cli_app, ["subjects", "export", *meta, *connection])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["id"] for line in lines] == list(reversed(people["mine"]))
    refused = CliRunner().invoke(cli_app, ["subjects", "erase", *meta, *connection], input="n\n")
    assert refused.exit_code != 0
    erased = CliRunner().invoke(cli_app, ["subjects", "erase", *meta, "--yes", *connection])
    assert erased.exit_code == 0, erased.output
    assert "erased 3 calls and 3 bodies; removed from 1 metadata sets" in erased.stdout
    usage = CliRunner().invoke(cli_app, ["subjects", "erase", "--yes", *connection])
    assert usage.exit_code == 2 and "--meta" in usage.output
