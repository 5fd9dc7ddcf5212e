"""Migration 0010 (each call's list of upstream attempts) on SQLite and Postgres: up from
0009 with spend rows in place (they keep their count and get no list), a new row stored
with its list through the spend writer, down again (rows kept), and up once more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from requestlog_support import spend_record, write
from sqlalchemy import inspect, text

from alembic_steps import migrate
from tollway.store import requests as request_store
from tollway.store.db import Database

ATTEMPTS = [
    {"provider": "oa", "model": "up-a", "outcome": "upstream_timeout", "status": None},
    {"provider": "an", "model": "up-b", "outcome": "ok", "status": 200, "latency_ms": 12.5},
]


async def spend_columns(db: Database) -> set[str]:
    def read(connection: Any) -> set[str]:
        return {c["name"] for c in inspect(connection).get_columns("spend")}

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def shown(db: Database, request_id: str) -> dict[str, Any]:
    async with db.reader() as session:
        found = await request_store.one(session, request_id)
    assert found is not None
    return found


async def test_0010_up_down_up_with_rows(database_url: str) -> None:
    db = Database(database_url)
    try:
        await migrate(db, "0009")
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO spend (request_id, ts, endpoint, input_tokens, output_tokens, "
                    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, "
                    "cost_pico, priced, estimated, status, latency_ms, stream, cached, "
                    "attempts, metadata) VALUES ('req_0009', :ts, 'chat.completions', 1, 1, "
                    "0, 0, 0, 0, 0, true, false, 200, 1.5, false, false, 3, '{}')"
                ),
                {"ts": datetime(2025, 3, 1, tzinfo=UTC)},
            )
        await migrate(db, "0010")
        assert "attempt_log" in await spend_columns(db)
        before = await shown(db, "req_0009")
        assert before["attempts"] == 3 and before["attempt_log"] == []

        record = {**spend_record("req_0010", datetime.now(UTC)), "attempts": 2}
        await write(db, [{**record, "attempt_log": ATTEMPTS}])
        after = await shown(db, "req_0010")
        assert after["attempt_log"] == [
            {**ATTEMPTS[0], "latency_ms": None},
            ATTEMPTS[1],
        ]

        await migrate(db, "0009", down=True)
        assert "attempt_log" not in await spend_columns(db)
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("SELECT COUNT(*) FROM spend"))).scalar() == 2

        await migrate(db, "0010")
        assert (await shown(db, "req_0010"))["attempt_log"] == []
    finally:
        await db.aclose()
