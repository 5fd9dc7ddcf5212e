"""``GET /api/v1/spend`` and ``tollway spend``: groups, filters, roles and bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    CLIENT_TIMEOUT,
    GPT_MINI,
    HAIKU,
    HOUSE_EMBED,
    MASTER_KEY,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    expected_cost,
    new_key,
    new_project,
    spend,
    wait_for_requests,
)
from typer.testing import CliRunner

from harness import GatewayServer
from tollway.cli.main import app as cli_app

OPENAI_ERROR_KEYS = {"message", "type", "code", "param"}
CHAT_TOKENS = Tokens(input=1000, output=100)
MESSAGE_TOKENS = Tokens(input=2000, cached=500, output=300)
EMBED_TOKENS = Tokens(input=64, output=0)


def management_error(response: httpx.Response, statuses: tuple[int, ...]) -> dict[str, Any]:
    """The management API's error shape."""
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == OPENAI_ERROR_KEYS
    assert error["message"]
    assert "Traceback" not in response.text
    return error


def _chat(http: httpx.Client, up: MeteredUpstream, secret: str) -> None:
    up.script(Metered(CHAT_TOKENS), path="/v1/chat/completions")
    response = http.post(
        "/v1/chat/completions",
        json={"model": GPT_MINI, "messages": MESSAGES},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.text


def _message(http: httpx.Client, up: MeteredUpstream, secret: str) -> None:
    up.script(Metered(MESSAGE_TOKENS), path="/v1/messages")
    response = http.post(
        "/v1/messages",
        json={"model": HAIKU, "messages": MESSAGES, "max_tokens": 400},
        headers={"x-api-key": secret},
    )
    assert response.status_code == 200, response.text


def _embed(http: httpx.Client, up: MeteredUpstream, secret: str) -> None:
    up.script(Metered(EMBED_TOKENS), path="/v1/embeddings")
    response = http.post(
        "/v1/embeddings",
        json={"model": HOUSE_EMBED, "input": "hello"},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def traffic(mgw: GatewayServer, metered_server: MeteredUpstream) -> Iterator[dict[str, Any]]:
    """A project with two keys (metadata org=acme / globex) and some calls on each."""
    up = metered_server
    up.reset()
    with (
        admin_client(mgw.url) as api,
        httpx.Client(base_url=mgw.url, timeout=CLIENT_TIMEOUT) as http,
    ):
        project = new_project(api)
        acme = new_key(api, project=project["name"], metadata={"org": "acme", "session": "s1"})
        globex = new_key(api, project=project["name"], metadata={"org": "globex"})
        _chat(http, up, acme["key"])
        _chat(http, up, acme["key"])
        _message(http, up, acme["key"])
        _message(http, up, globex["key"])
        _embed(http, up, globex["key"])
        wait_for_requests(api, 5, project=project["name"])
    up.reset()
    yield {"project": project, "acme": acme, "globex": globex}


CHAT_COST = expected_cost(GPT_MINI, CHAT_TOKENS)
MESSAGE_COST = expected_cost(HAIKU, MESSAGE_TOKENS)
EMBED_COST = expected_cost(HOUSE_EMBED, EMBED_TOKENS)


def _groups(report: dict[str, Any]) -> dict[str | None, Decimal]:
    return {group["group"]: Decimal(group["cost_usd"]) for group in report["groups"]}


def test_group_by(traffic: dict[str, Any], api: httpx.Client) -> None:
    project = traffic["project"]["name"]
    acme, globex = traffic["acme"]["id"], traffic["globex"]["id"]
    total = 2 * CHAT_COST + 2 * MESSAGE_COST + EMBED_COST
    expected = {
        "key": {acme: 2 * CHAT_COST + MESSAGE_COST, globex: MESSAGE_COST + EMBED_COST},
        "project": {traffic["project"]["id"]: total},
        "model": {GPT_MINI: 2 * CHAT_COST, HAIKU: 2 * MESSAGE_COST, HOUSE_EMBED: EMBED_COST},
        "provider": {"oa": 2 * CHAT_COST + EMBED_COST, "an": 2 * MESSAGE_COST},
        "endpoint": {
            "chat.completions": 2 * CHAT_COST,
            "messages": 2 * MESSAGE_COST,
            "embeddings": EMBED_COST,
        },
        "day": {datetime.now(UTC).strftime("%Y-%m-%d"): total},
        "metadata.org": {"acme": 2 * CHAT_COST + MESSAGE_COST, "globex": MESSAGE_COST + EMBED_COST},
        "metadata.session": {"s1": 2 * CHAT_COST + MESSAGE_COST, None: MESSAGE_COST + EMBED_COST},
    }
    for group_by, groups in expected.items():
        report = spend(api, project=project, group_by=group_by)
        assert report["group_by"] == group_by
        assert _groups(report) == groups, group_by
        costs = [Decimal(group["cost_usd"]) for group in report["groups"]]
        assert costs == sorted(costs, reverse=True), "most expensive first"
        assert Decimal(report["totals"]["cost_usd"]) == total
        assert report["totals"]["requests"] == 5
    by_model = {g["group"]: g for g in spend(api, project=project, group_by="model")["groups"]}
    assert by_model[HAIKU]["requests"] == 2
    assert by_model[HAIKU]["input_tokens"] == 2 * MESSAGE_TOKENS.input
    assert by_model[HAIKU]["cache_read_tokens"] == 2 * MESSAGE_TOKENS.cached
    # Filters combine: one key, by project id or name.
    report = spend(api, project=traffic["project"]["id"], key=globex, group_by="model")
    assert _groups(report) == {HAIKU: MESSAGE_COST, HOUSE_EMBED: EMBED_COST}


def test_time_window(traffic: dict[str, Any], api: httpx.Client) -> None:
    project = traffic["project"]["name"]
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    inside = spend(api, project=project, **{"from": (now - hour).isoformat()})
    assert inside["totals"]["requests"] == 5
    until = spend(api, project=project, **{"to": (now + hour).isoformat()})
    assert until["totals"]["requests"] == 5
    assert spend(api, project=project, **{"from": (now + hour).isoformat()})["totals"] == {
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": "0",
        "unpriced_requests": 0,
        "estimated_requests": 0,
    }
    assert spend(api, project=project, to=(now - hour).isoformat())["totals"]["requests"] == 0
    zulu = (now - hour).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert spend(api, project=project, **{"from": zulu})["totals"]["requests"] == 5


def test_time_window_with_utc_offset(traffic: dict[str, Any], api: httpx.Client) -> None:
    """from/to with any UTC offset mean that instant (SQLite stores naive UTC: an offset
    must be converted, not dropped)."""
    project = traffic["project"]["name"]
    now = datetime.now(UTC)
    east = timezone(timedelta(hours=5))
    since = (now - timedelta(hours=1)).astimezone(east).isoformat()
    until = (now + timedelta(hours=1)).astimezone(east).isoformat()
    report = spend(api, project=project, **{"from": since, "to": until})
    assert report["totals"]["requests"] == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "bogus"}, "group_by"),
        ({"group_by": "models"}, "group_by"),
        ({"group_by": "metadata."}, "group_by"),
        ({"group_by": "metadata.org-name"}, "group_by"),
        ({"group_by": "metadata.a.b"}, "group_by"),
        ({"group_by": "metadata.x'); DROP TABLE spend; --"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-45T00:00:00Z"}, "to"),
        ({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"project": "no-such-project-anywhere"}, "project"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_bad_input(params: dict[str, str], param: str, api: httpx.Client) -> None:
    error = management_error(api.get("/spend", params=params), (400, 422))
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_unknown_key_is_an_empty_report(api: httpx.Client) -> None:
    report = spend(api, key="key_does_not_exist")
    assert report["totals"]["requests"] == 0
    assert Decimal(report["totals"]["cost_usd"]) == 0


def test_who_may_read_spend(traffic: dict[str, Any], mgw: GatewayServer, api: httpx.Client) -> None:
    keys = {}
    for role in ("viewer", "operator"):
        created = api.post("/admin-keys", json={"name": f"{role} for spend", "role": role})
        assert created.status_code == 201, created.text
        keys[role] = created.json()["key"]
    for role, secret in keys.items():
        with admin_client(mgw.url, secret) as client:
            report = spend(client, project=traffic["project"]["name"])
            assert report["totals"]["requests"] == 5, role
            shown = client.get(f"/keys/{traffic['acme']['id']}")
            assert shown.status_code == 200
            assert Decimal(shown.json()["spend_usd"]["lifetime"]) == 2 * CHAT_COST + MESSAGE_COST
    with admin_client(mgw.url, keys["viewer"]) as viewer:
        management_error(viewer.post("/keys", json={"name": "nope"}), (403,))
    with httpx.Client(base_url=mgw.url + "/api/v1", timeout=CLIENT_TIMEOUT) as anonymous:
        management_error(anonymous.get("/spend"), (401,))
        management_error(
            anonymous.get("/spend", headers={"authorization": "Bearer sk-wrong-0000"}), (401,)
        )
        virtual = traffic["acme"]["key"]
        management_error(
            anonymous.get("/spend", headers={"authorization": f"Bearer {virtual}"}), (401,)
        )


def _cli(mgw: GatewayServer, *args: str) -> str:
    result = CliRunner().invoke(
        cli_app, ["spend", "--url", mgw.url, "--master-key", MASTER_KEY, *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_json_and_csv(traffic: dict[str, Any], mgw: GatewayServer, api: httpx.Client) -> None:
    project = traffic["project"]["name"]
    as_json = json.loads(_cli(mgw, "--json", "--project", project, "-g", "model"))
    assert as_json == spend(api, project=project, group_by="model")
    rows = list(csv.DictReader(io.StringIO(_cli(mgw, "--csv", "--project", project, "-g", "key"))))
    assert [row["group"] for row in rows] == [
        traffic["acme"]["id"],
        traffic["globex"]["id"],
        "TOTAL",
    ]
    assert Decimal(rows[0]["cost_usd"]) == 2 * CHAT_COST + MESSAGE_COST
    assert Decimal(rows[-1]["cost_usd"]) == 2 * CHAT_COST + 2 * MESSAGE_COST + EMBED_COST
    assert rows[-1]["requests"] == "5"
    totals = list(csv.DictReader(io.StringIO(_cli(mgw, "--csv", "--key", traffic["globex"]["id"]))))
    assert [row["group"] for row in totals] == ["TOTAL"]
    assert Decimal(totals[0]["cost_usd"]) == MESSAGE_COST + EMBED_COST
    assert "spend" in _cli(mgw, "--project", project)  # the table for people renders


def test_cli_bad_input_exits_non_zero(mgw: GatewayServer) -> None:
    result = CliRunner().invoke(
        cli_app, ["spend", "--url", mgw.url, "--master-key", MASTER_KEY, "-g", "bogus"]
    )
    assert result.exit_code == 1
    assert "group_by must be one of" in result.output
    assert "Traceback" not in result.output


def _open_segments_written_to(directory: Path) -> list[str]:
    """Journal segments open in this process that hold a record (the owner lock stays
    open for life; the spare segment the next record goes to is open and empty)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            segment = target.startswith(str(directory)) and target.endswith(".jsonl")
            if segment and Path(target).read_bytes().strip(b"\0"):
                found.append(target)
    return found


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_report_includes_a_call_the_background_writer_is_committing(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client, db_path: Path
) -> None:
    """The report 'flushes first': that includes waiting for a batch the background
    writer has taken but not yet committed (here made slow with a held write lock)."""
    key = new_key(api)
    lock = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the next commit takes a while
    try:
        _chat(http, up, key["key"])
        # The background writer has taken the record once it has closed the journal
        # segment it was in (the gateway runs in this process: its fds are ours).
        journal = Path(mgw.settings.data_dir) / "journal"
        assert wait_until(lambda: not _open_segments_written_to(journal))
        result: dict[str, Any] = {}

        def read_report() -> None:
            with admin_client(mgw.url) as client:
                result.update(spend(client, key=key["id"]))

        reader = threading.Thread(target=read_report)
        reader.start()
        threading.Event().wait(0.3)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    reader.join(15)
    assert result["totals"]["requests"] == 1
