"""A call's upstream attempts in the request log: the real gateway falls back from a
deployment that fails (a 500, a refused connection) to one that serves, and
``GET /api/v1/requests/{id}`` and ``tollway requests show`` list both attempts in order
with their outcomes; on SQLite and Postgres. Journal records written before the list
existed are still stored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from requestlog_support import MODELS, PRICE, admin, ok, settings_for, spend_record
from typer.testing import CliRunner

from fake_upstream import Fail, FakeUpstream
from harness import CLAUDE, CLAUDE_UPSTREAM, GPT, GPT_UPSTREAM, MASTER_KEY, GatewayServer
from services import shared_postgres_database
from tollway.admin.requests import RequestDetail, entry
from tollway.bounds import MAX_ATTEMPTS
from tollway.cli.main import app as cli_app
from tollway.metering.journal import JOURNAL_DIR
from tollway.metering.records import Recorder
from tollway.store import requests as request_store
from tollway.store.db import Database

CHAT = "/v1/chat/completions"
# The first deployment fails, a fallback model on another deployment answers.
FAILS_WITH_500 = "gpt-first-fails"
FAILS_TO_CONNECT = "gpt-first-refused"
FALLBACK_MODELS = [
    *MODELS,
    {
        "name": FAILS_WITH_500,
        "provider": "oa",
        "model": "gpt-primary-up",
        "price": PRICE,
        "fallbacks": [CLAUDE],
    },
    {
        "name": FAILS_TO_CONNECT,
        "provider": "oa-refused",
        "model": "gpt-nowhere-up",
        "price": PRICE,
        "fallbacks": [GPT],
    },
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest,
    fake_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    """A gateway whose models fall back, on SQLite and on Postgres."""
    folder = tmp_path_factory.mktemp(f"attempts-{request.param}")
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = stack.enter_context(shared_postgres_database())
        settings = settings_for(fake_server, folder / "data", url, models=FALLBACK_MODELS)
        server = GatewayServer(settings).start()
        try:
            yield server
        finally:
            server.stop()


def call(url: str, model: str, **extra: Any) -> str:
    """One chat completion as the master key that must succeed; its request id."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], **extra}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    answer = httpx.post(url + CHAT, json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"]


def detail(url: str, request_id: str) -> dict[str, Any]:
    """``GET /api/v1/requests/{id}``."""
    with admin(url) as api:
        return dict(ok(api.get(f"/requests/{request_id}")))


def served(entry: dict[str, Any], provider: str, model: str) -> None:
    """The last attempt is the one that answered."""
    last = entry["attempt_log"][-1]
    assert (last["provider"], last["model"], last["outcome"], last["status"]) == (
        provider,
        model,
        "ok",
        200,
    )
    assert 0 < last["latency_ms"] <= entry["latency_ms"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_500_then_a_fallback(gw: GatewayServer, fake_server: FakeUpstream, stream: bool) -> None:
    server = gw
    fake_server.reset()
    fake_server.script(Fail(500), path=CHAT)
    request_id = call(server.url, FAILS_WITH_500, stream=stream)
    entry = detail(server.url, request_id)
    assert entry["attempts"] == 2 and len(entry["attempt_log"]) == 2
    assert (entry["provider"], entry["status"], entry["stream"]) == ("an", 200, stream)
    first = entry["attempt_log"][0]
    assert (first["provider"], first["model"], first["outcome"], first["status"]) == (
        "oa",
        "gpt-primary-up",
        "upstream_error",
        500,
    )
    assert first["latency_ms"] >= 0
    served(entry, "an", CLAUDE_UPSTREAM)


def test_a_refused_connection_then_a_fallback(gw: GatewayServer) -> None:
    server = gw
    request_id = call(server.url, FAILS_TO_CONNECT)
    entry = detail(server.url, request_id)
    assert entry["attempts"] == 2
    first = entry["attempt_log"][0]
    assert (first["provider"], first["model"], first["outcome"], first["status"]) == (
        "oa-refused",
        "gpt-nowhere-up",
        "upstream_unavailable",
        None,
    )
    served(entry, "oa", GPT_UPSTREAM)

    runner = CliRunner()
    shown = runner.invoke(
        cli_app, ["requests", "show", request_id, "--url", server.url, "--master-key", MASTER_KEY]
    )
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "upstream attempts" in text
    assert text.index("gpt-nowhere-up") < text.index(GPT_UPSTREAM, text.index("upstream attempts"))
    assert "upstream_unavailable" in text


def test_one_attempt_and_none(gw: GatewayServer, fake_server: FakeUpstream) -> None:
    server = gw
    fake_server.reset()
    entry = detail(server.url, call(server.url, GPT))
    assert entry["attempts"] == 1 and len(entry["attempt_log"]) == 1
    served(entry, "oa", GPT_UPSTREAM)
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "Hi."}]}
    refused = httpx.post(server.url + CHAT, json=body, headers=headers, timeout=10)
    assert refused.status_code == 404
    entry = detail(server.url, refused.headers["x-request-id"])
    assert entry["attempts"] == 0 and entry["attempt_log"] == []


async def test_replay_takes_records_without_the_list(database_url: str, tmp_path: Path) -> None:
    """A dead process's journal, replayed: a record from before the list is stored with
    none, and a hostile list is cut to its bounds."""
    now = datetime.now(UTC)
    older = spend_record("req_before_the_list", now)
    assert "attempt_log" not in older
    hostile = {
        **spend_record("req_hostile_list", now),
        "attempts": 2,
        "attempt_log": [
            {"provider": "p" * 500, "model": "m\x00" * 300, "outcome": 7, "status": True},
            "not an attempt",
            {"provider": "oa", "model": "up", "outcome": "ok", "status": 200, "latency_ms": -5},
            *({"provider": "oa", "outcome": "upstream_error", "latency_ms": 3} for _ in range(40)),
        ],
    }
    journal = tmp_path / "data" / JOURNAL_DIR
    journal.mkdir(parents=True)
    lines = [orjson.dumps(record) for record in (older, hostile)]
    (journal / "spend-gone.1.abcd-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    db = Database(database_url)
    try:
        await db.migrate()
        recorder = Recorder(db, tmp_path / "data")
        assert await recorder.recover() == 2
        await recorder.aclose()
        async with db.reader() as session:
            old = await request_store.one(session, "req_before_the_list")
            bad = await request_store.one(session, "req_hostile_list")
    finally:
        await db.aclose()
    assert old is not None and bad is not None
    assert old["attempts"] == 1 and old["attempt_log"] == []
    RequestDetail(**entry(bad))  # what the API would answer
    log = bad["attempt_log"]
    assert len(log) == MAX_ATTEMPTS - 1  # the first MAX_ATTEMPTS items; one was no try
    assert log[0] == {
        "provider": "p" * 80,
        "model": "m" * 200,
        "outcome": "7",
        "status": None,
        "latency_ms": None,
    }
    assert (log[1]["outcome"], log[1]["status"], log[1]["latency_ms"]) == ("ok", 200, None)
    assert log[2] == {
        "provider": "oa",
        "model": None,
        "outcome": "upstream_error",
        "status": None,
        "latency_ms": 3.0,
    }
