"""``kill -9`` under concurrent load with budgeted keys: nothing is lost, nothing counted
twice, nothing stays held.

Calls that completed before the kill keep their records (journaled before the response
ended). Calls in flight at the kill (admitted, upstream answering slowly) get a record
flagged ``crash_recovered``, estimated and charged what they held, from the journal the
restarted gateway replays. Their budget holds are reclaimed at that restart, so the
budget's ledger equals the sum of the records.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    DOLLAR_CLAUDE,
    DOLLAR_GPT,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    admin_client,
    budget,
    new_key,
    units,
    write_config,
)

from served import ServedGateway

KILLS = 2
FAST, SLOW = 6, 10  # calls per round that finish before the kill / are cut by it


@pytest.fixture
def served(up: MeteredUpstream, tmp_path: Path) -> Iterator[ServedGateway]:
    """``tollway serve`` on SQLite in a fresh data dir."""
    gateway = ServedGateway(
        write_config(tmp_path / "cfg.yaml", tmp_path / "data", up), tmp_path / "data"
    )
    yield gateway.start()
    gateway.stop()


def _rows(db: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args).fetchall())
    finally:
        conn.close()


async def _round(url: str, secret: str, up: MeteredUpstream, kill: Any) -> tuple[set[str], int]:
    """Some calls that finish, then some cut by ``kill``: the ids the client saw answered,
    and how many calls were cut."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def call(index: int) -> httpx.Response | None:
            stream = index % 2 == 1
            if index % 3 == 0:
                body = {"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": 10}
                path, headers = "/v1/messages", {"x-api-key": secret}
            else:
                body = {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": 10}
                path, headers = "/v1/chat/completions", {"authorization": f"Bearer {secret}"}
            body["stream"] = stream
            try:
                response = await client.post(path, json=body, headers=headers)
            except httpx.HTTPError:
                return None
            return response

        up.script(Metered(Tokens(output=10)), persistent=True)
        done = await asyncio.gather(*(call(i) for i in range(FAST)))
        answered = {
            r.headers["x-request-id"] for r in done if r is not None and r.status_code == 200
        }
        assert len(answered) == FAST
        up.reset()
        up.script(Metered(Tokens(output=10), delay=3.0), persistent=True)
        flying = [asyncio.create_task(call(i)) for i in range(SLOW)]
        # Wait until every slow call has reached the upstream: all admitted and held.
        await asyncio.to_thread(up.wait_for, lambda: len(up.requests) >= SLOW, 15.0)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(kill)
        cut = await asyncio.gather(*flying)
        assert all(r is None or r.status_code != 200 for r in cut)
    return answered, SLOW


async def test_kill_9_under_load_leaves_exact_records_and_no_holds(
    served: ServedGateway, up: MeteredUpstream
) -> None:
    with admin_client(served.url) as api:
        key = new_key(api, max_budget_usd=budget(100_000))
    answered: set[str] = set()
    cut = 0
    for _ in range(KILLS):
        up.reset()
        seen, lost = await _round(served.url, key["key"], up, served.kill)
        answered |= seen
        cut += lost
        served.port = 0
        served.start()  # replays the dead process's journal, reclaims its holds

    db = served.db_path
    with admin_client(served.url) as api:
        report = api.get("/spend", params={"key": key["id"]}).json()
        shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    rows = _rows(db, "SELECT * FROM spend WHERE key_id = ?", key["id"])
    served_rows = {r["request_id"] for r in rows if r["status"] == 200}
    crashed = [r for r in rows if r["flags"] == "crash_recovered"]
    assert served_rows == answered  # every answered call, once, and nothing else as 200
    assert len(crashed) == cut  # every call cut by a kill has its record
    assert len(rows) == len(answered) + cut == report["totals"]["requests"]
    assert len({r["request_id"] for r in rows}) == len(rows)
    for row in crashed:
        assert row["status"] == 500 and row["estimated"] == 1
        # Charged what it held: 10 output tokens at one UNIT each (input is free).
        assert Decimal(str(row["cost_usd"])) == units(10)
    assert _rows(db, "SELECT * FROM budget_holds") == []
    [slot] = _rows(db, "SELECT * FROM budget_slots WHERE owner_id = ?", key["id"])
    assert slot["held_nano"] == 0
    total = sum(Decimal(str(r["cost_usd"])) for r in rows)
    assert Decimal(slot["spent_nano"]) / Decimal(10**9) == total
    assert Decimal(shown["lifetime"]) == total == units(10) * len(rows)
