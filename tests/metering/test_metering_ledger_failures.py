"""A failing budget operation is a 503 with Retry-After, never a wedged store.

Before, one request with ``max_tokens: 5000000000000`` on a budgeted key overflowed
SQLite's integer inside the ledger's write transaction, which stayed open: every later
budgeted call failed, spend stopped landing, key creation and revocation timed out and
the key being revoked kept working. Now such numbers are refused at the edge, the
ledger rolls back whatever fails inside a transaction, and a broken ledger only makes
budgeted calls answer 503 in their dialect.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    DOLLAR_CLAUDE,
    DOLLAR_GPT,
    MASTER_KEY,
    MESSAGES,
    MODELS,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    budget,
    new_key,
    providers,
)

from checks import anthropic_error, openai_error
from harness import GatewayServer
from tollway.metering import sqlite_ledger
from tollway.metering.budget import Budget
from tollway.metering.sqlite_ledger import SqliteLedger
from tollway.settings import Settings
from tollway.store.db import Database


def _chat(max_tokens: Any = 10) -> dict[str, Any]:
    return {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": max_tokens}


@pytest.fixture
def own(metered_server: MeteredUpstream, tmp_path: Path) -> Iterator[GatewayServer]:
    """A gateway with a data dir of its own (this test breaks its database)."""
    settings = Settings(
        master_key=MASTER_KEY,
        data_dir=tmp_path / "data",
        providers=providers(metered_server),
        models=MODELS,
        retry={"attempts": 0},
        log={"level": "warning", "access": False},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.mark.parametrize("max_tokens", [5_000_000_000_000, 2**63, 1_048_577])
def test_absurd_max_tokens_is_400_before_any_hold(
    up: MeteredUpstream, api: httpx.Client, http: httpx.Client, max_tokens: int
) -> None:
    key = new_key(api, max_budget_usd=budget(100))
    headers = {"authorization": f"Bearer {key['key']}"}
    error = openai_error(
        http.post("/v1/chat/completions", json=_chat(max_tokens), headers=headers), 400
    )
    assert error["param"] == "max_tokens"
    assert up.requests == []
    # Nothing was held: the whole budget is still there.
    assert Decimal(api.get(f"/keys/{key['id']}").json()["spend_usd"]["current_period"]) == 0
    up.script(Metered(Tokens(output=10)))
    assert http.post("/v1/chat/completions", json=_chat(), headers=headers).status_code == 200


async def test_ledger_rolls_back_whatever_fails_inside_its_transaction(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'tollway.db'}")
    await db.migrate()
    await db.aclose()
    ledger = SqliteLedger(tmp_path / "tollway.db", "test-instance")
    limit = Budget("key", "key_x", Decimal(100), None)
    try:
        await ledger.reserve([limit], Decimal(1), "req_same")
        # The same call held twice breaks a unique constraint mid-transaction.
        with pytest.raises(sqlite3.IntegrityError):
            await ledger.reserve([limit], Decimal(1), "req_same")
        # No transaction was left open: another writer gets the lock at once.
        other = sqlite3.connect(tmp_path / "tollway.db", timeout=0.5, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
        held = await ledger.reserve([limit], Decimal(2), "req_next")
        await ledger.settle(held, Decimal("1.5"))
        assert await ledger.spent(limit) == Decimal("2.5")  # 1 held + 1.5 spent
    finally:
        await ledger.aclose()


def test_broken_ledger_is_503_in_dialect_and_nothing_wedges(
    own: GatewayServer, up: MeteredUpstream
) -> None:
    with admin_client(own.url) as api, httpx.Client(base_url=own.url, timeout=15) as http:
        key = new_key(api, max_budget_usd=budget(100))
        free = new_key(api)
        up.script(Metered(Tokens(output=10)), persistent=True)
        db = sqlite3.connect(Path(own.settings.data_dir) / "tollway.db", isolation_level=None)
        db.execute("ALTER TABLE budget_holds RENAME TO budget_holds_away")
        try:
            chat = http.post(
                "/v1/chat/completions",
                json=_chat(),
                headers={"authorization": f"Bearer {key['key']}"},
            )
            error = openai_error(chat, 503)
            assert error["code"] == "budget_unavailable"
            assert chat.headers["retry-after"].isdigit()
            message = http.post(
                "/v1/messages",
                json={"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": 10},
                headers={"x-api-key": key["key"]},
            )
            assert anthropic_error(message, 503)["type"] == "overloaded_error"
            # Keys without a budget keep working; management stays fast.
            ok = http.post(
                "/v1/chat/completions",
                json=_chat(),
                headers={"authorization": f"Bearer {free['key']}"},
            )
            assert ok.status_code == 200, ok.text
            started = time.monotonic()
            assert api.post("/keys", json={"name": "while-broken"}).status_code == 201
            assert api.delete(f"/keys/{free['id']}").status_code == 200
            assert time.monotonic() - started < 2
            revoked = http.post(
                "/v1/chat/completions",
                json=_chat(),
                headers={"authorization": f"Bearer {free['key']}"},
            )
            assert openai_error(revoked, 401)["code"] == "invalid_api_key"
        finally:
            db.execute("ALTER TABLE budget_holds_away RENAME TO budget_holds")
            db.close()
        # Repaired: the budgeted key works again, and every call left a record.
        again = http.post(
            "/v1/chat/completions", json=_chat(), headers={"authorization": f"Bearer {key['key']}"}
        )
        assert again.status_code == 200, again.text
        report = api.get("/spend", params={"key": key["id"]}).json()
        assert report["totals"]["requests"] == 3
        statuses = sorted(
            row[0] for row in db_rows(own, "SELECT status FROM spend WHERE key_id = ?", key["id"])
        )
        assert statuses == [200, 503, 503]


def db_rows(gateway: GatewayServer, sql: str, *args: Any) -> list[Any]:
    """Rows from the gateway's SQLite file."""
    conn = sqlite3.connect(Path(gateway.settings.data_dir) / "tollway.db", timeout=10)
    try:
        return list(conn.execute(sql, args).fetchall())
    finally:
        conn.close()


async def test_ledger_waits_for_another_writer_then_gives_up_after_its_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holding the write lock (the spend writer committing a batch,
    another process's ledger) is waited for; past the ledger's patience the reservation
    fails with "database is locked" and holds nothing."""
    path = tmp_path / "tollway.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    await db.aclose()
    ledger = SqliteLedger(path, "test-instance")
    limit = Budget("key", "key_x", Decimal(100), None)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await ledger.spent(limit)  # the slot exists: only the reservation needs the lock
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, other.execute, "COMMIT")
        held = await ledger.reserve([limit], Decimal(1), "req_waited")
        assert held.slots and await ledger.spent(limit) == Decimal(1)

        monkeypatch.setattr(sqlite_ledger, "LOCK_PATIENCE_SECONDS", 0.05)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await ledger.reserve([limit], Decimal(1), "req_refused")
        other.execute("COMMIT")
        assert await ledger.spent(limit) == Decimal(1)
    finally:
        other.close()
        await ledger.aclose()
