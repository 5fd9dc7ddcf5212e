"""``GET /api/v1/requests`` and ``tollway requests``: an entry per call with what the
call was and how it went, filters, stable cursor pagination, roles and bad input; on
SQLite and Postgres, through the real gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from requestlog_support import (
    USER_AGENT,
    admin,
    chat,
    cost,
    message,
    new_key,
    new_project,
    ok,
)
from typer.testing import CliRunner

from fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, Fail, FakeUpstream
from harness import CLAUDE, CLAUDE_UPSTREAM, GPT, GPT_UPSTREAM, MASTER_KEY, GatewayServer
from tollway.cli.main import app as cli_app

ENTRY_FIELDS = {
    "id",
    "key_id",
    "project_id",
    "model",
    "provider",
    "status",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "created_at",
    "deployment",
    "error",
    "ttft_ms",
    "attempts",
    "metadata",
    "user_agent",
}


def listing(api: httpx.Client, **params: Any) -> dict[str, Any]:
    """One page of the request log."""
    return dict(ok(api.get("/requests", params=params)))


@pytest.fixture(scope="module")
def calls(rlgw: GatewayServer, fake_server: FakeUpstream) -> dict[str, Any]:
    """Two projects, three keys, and calls of every kind on them."""
    fake_server.reset()
    with admin(rlgw.url) as api:
        alpha, beta = new_project(api), new_project(api)
        acme = new_key(api, project=alpha["name"], metadata={"user": "u-1", "org": "acme"})
        globex = new_key(api, project=alpha["name"], metadata={"user": "u-2", "org": "globex"})
        other = new_key(api, project=beta["name"], metadata={"user": "u-1"})
        ids = {}
        ids["chat"] = chat(rlgw.url, acme["key"]).headers["x-request-id"]
        ids["message"] = message(rlgw.url, acme["key"]).headers["x-request-id"]
        stream = message(rlgw.url, globex["key"], stream=True)
        assert stream.status_code == 200
        ids["stream"] = stream.headers["x-request-id"]
        fake_server.script(Fail(500))
        failed = chat(rlgw.url, other["key"])
        assert failed.status_code == 502
        ids["failed"] = failed.headers["x-request-id"]
        refused = chat(rlgw.url, globex["key"], model="no-such-model")
        assert refused.status_code == 404
        ids["refused"] = refused.headers["x-request-id"]
    fake_server.reset()
    return {"alpha": alpha, "beta": beta, "acme": acme, "globex": globex, "other": other, **ids}


def test_an_entry_per_call_with_what_it_was(calls: dict[str, Any], api: httpx.Client) -> None:
    page = listing(api, project=calls["alpha"]["id"])
    assert page["next_cursor"] is None
    by_id = {entry["id"]: entry for entry in page["data"]}
    assert set(by_id) == {calls[k] for k in ("chat", "message", "stream", "refused")}
    for entry in page["data"]:
        assert entry.keys() >= ENTRY_FIELDS

    chat_entry = by_id[calls["chat"]]
    assert chat_entry["key_id"] == calls["acme"]["id"]
    assert chat_entry["project_id"] == calls["alpha"]["id"]
    assert chat_entry["model"] == GPT and chat_entry["provider"] == "oa"
    assert chat_entry["deployment"] == f"oa/{GPT_UPSTREAM}"
    assert chat_entry["status"] == 200 and chat_entry["error"] is None
    assert chat_entry["input_tokens"] == PROMPT_TOKENS
    assert chat_entry["output_tokens"] == COMPLETION_TOKENS
    assert Decimal(chat_entry["cost_usd"]) == cost(PROMPT_TOKENS, COMPLETION_TOKENS)
    assert chat_entry["attempts"] == 1
    assert chat_entry["latency_ms"] > 0
    assert chat_entry["metadata"] == {"user": "u-1", "org": "acme"}
    assert chat_entry["user_agent"] == USER_AGENT

    streamed = by_id[calls["stream"]]
    assert streamed["stream"] is True and streamed["deployment"] == f"an/{CLAUDE_UPSTREAM}"
    assert 0 < streamed["ttft_ms"] <= streamed["latency_ms"]
    assert streamed["model"] == CLAUDE and streamed["key_id"] == calls["globex"]["id"]

    refused = by_id[calls["refused"]]
    assert refused["status"] == 404 and refused["error"] == "model_not_found"
    assert refused["provider"] is None and refused["deployment"] is None
    assert refused["attempts"] == 0 and Decimal(refused["cost_usd"]) == 0

    failed = ok(api.get(f"/requests/{calls['failed']}"))
    assert failed["status"] == 502 and failed["error"] == "upstream_error"
    assert failed["project_id"] == calls["beta"]["id"]
    assert failed["bodies"] is None  # the project does not capture


def test_newest_first_and_filters(calls: dict[str, Any], api: httpx.Client) -> None:
    alpha = calls["alpha"]["id"]
    page = listing(api, project=alpha)["data"]
    times = [datetime.fromisoformat(e["created_at"]) for e in page]
    assert times == sorted(times, reverse=True)
    assert [e["id"] for e in listing(api, key=calls["acme"]["id"])["data"]] == [
        calls["message"],
        calls["chat"],
    ]
    assert {
        e["id"] for e in listing(api, project=calls["alpha"]["name"], model=CLAUDE)["data"]
    } == {
        calls["message"],
        calls["stream"],
    }
    assert [e["id"] for e in listing(api, project=alpha, provider="oa")["data"]] == [calls["chat"]]
    assert [e["id"] for e in listing(api, project=alpha, status="404")["data"]] == [
        calls["refused"]
    ]
    assert [e["id"] for e in listing(api, key=calls["other"]["id"], status="5xx")["data"]] == [
        calls["failed"]
    ]
    assert len(listing(api, project=alpha, status="2xx")["data"]) == 3
    user_one = {e["id"] for e in listing(api, **{"metadata.user": "u-1"})["data"]}
    assert {calls["chat"], calls["message"], calls["failed"]} <= user_one
    assert calls["stream"] not in user_one
    both = listing(api, **{"metadata.user": "u-1", "metadata.org": "acme"})["data"]
    assert {e["id"] for e in both} == {calls["chat"], calls["message"]}
    now = datetime.now(UTC)
    assert listing(api, project=alpha, **{"from": (now + timedelta(hours=1)).isoformat()}) == {
        "data": [],
        "next_cursor": None,
    }
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    assert len(listing(api, project=alpha, **window)["data"]) == 4


def test_cursor_pages_are_stable(
    rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client
) -> None:
    project = new_project(api)
    key = new_key(api, project=project["name"])
    sent = [chat(rlgw.url, key["key"]).headers["x-request-id"] for _ in range(7)]
    seen: list[str] = []
    page = listing(api, key=key["id"], limit=3)
    assert len(page["data"]) == 3 and page["next_cursor"]
    seen += [e["id"] for e in page["data"]]
    # Calls made between two pages come first on a new listing, never into the next page.
    newer = chat(rlgw.url, key["key"]).headers["x-request-id"]
    cursor = page["next_cursor"]
    while cursor:
        page = listing(api, key=key["id"], limit=3, cursor=cursor)
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(sent))
    again = listing(api, key=key["id"], limit=3)["data"]
    assert again[0]["id"] == newer
    # The same cursor gives the same page every time.
    first = listing(api, key=key["id"], limit=2)
    assert listing(api, key=key["id"], limit=2, cursor=first["next_cursor"]) == listing(
        api, key=key["id"], limit=2, cursor=first["next_cursor"]
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MjAyNS0wMS0wMVQwMDowMDowMCswMDowMHwtNQ"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"status": "abc"}, "status"),
        ({"status": "600"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"project": "no-such-project-anywhere"}, "project"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_bad_input_is_a_clear_4xx(params: dict[str, str], param: str, api: httpx.Client) -> None:
    response = api.get("/requests", params=params)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["param"] == param


def test_unknown_request_is_404(api: httpx.Client) -> None:
    response = api.get("/requests/req_does_not_exist")
    assert response.status_code == 404
    assert "req_does_not_exist" in response.json()["error"]["message"]


def test_viewers_read_the_log_and_nobody_else(calls: dict[str, Any], rlgw: GatewayServer) -> None:
    with admin(rlgw.url) as api:
        viewer = ok(api.post("/admin-keys", json={"name": "log viewer", "role": "viewer"}), 201)
    with admin(rlgw.url, viewer["key"]) as client:
        assert ok(client.get(f"/requests/{calls['chat']}"))["id"] == calls["chat"]
        assert listing(client, key=calls["acme"]["id"])["data"]
    anonymous = httpx.get(rlgw.url + "/api/v1/requests", timeout=10)
    assert anonymous.status_code == 401
    virtual = {"authorization": f"Bearer {calls['acme']['key']}"}
    assert httpx.get(rlgw.url + "/api/v1/requests", headers=virtual, timeout=10).status_code == 401


def _cli(rlgw: GatewayServer, *args: str) -> str:
    result = CliRunner().invoke(
        cli_app, ["requests", *args, "--url", rlgw.url, "--master-key", MASTER_KEY]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_list_and_show(calls: dict[str, Any], rlgw: GatewayServer, api: httpx.Client) -> None:
    as_json = json.loads(_cli(rlgw, "list", "--key", calls["acme"]["id"], "--json"))
    assert as_json == listing(api, key=calls["acme"]["id"])
    paged = json.loads(_cli(rlgw, "list", "--key", calls["acme"]["id"], "--limit", "1", "--json"))
    assert [e["id"] for e in paged["data"]] == [calls["message"]]
    rest = _cli(rlgw, "list", "--key", calls["acme"]["id"], "--cursor", paged["next_cursor"])
    assert calls["chat"] in rest and calls["message"] not in rest
    table = _cli(rlgw, "list", "--meta", "org=acme", "--status", "2xx")
    assert calls["chat"] in table and calls["stream"] not in table
    shown = json.loads(_cli(rlgw, "show", calls["chat"], "--json"))
    assert shown["id"] == calls["chat"] and shown["bodies"] is None
    assert "user_agent" in _cli(rlgw, "show", calls["chat"])
    failed = CliRunner().invoke(
        cli_app,
        ["requests", "list", "--cursor", "junk", "--url", rlgw.url, "--master-key", MASTER_KEY],
    )
    assert failed.exit_code == 1 and "cursor" in failed.output
