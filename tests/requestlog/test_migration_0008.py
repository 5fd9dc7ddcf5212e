"""Migration 0008 (user agents, spend rollups, captured bodies, the capture policy) on
SQLite and Postgres: up from 0007 with spend rows in place (their rollups are filled
from them, exactly), down again, and up once more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, text

from alembic_steps import migrate
from tollway.store import spend
from tollway.store.db import Database
from tollway.store.migrate import HEAD_REVISION, head_revision

NEW_TABLES = {"spend_rollups", "spend_metadata", "request_bodies"}
# Metadata as 0007 stored it: JSON text, none, an empty object, JSON null.
SETS = ['{"org": "acme"}', "{}", '{"org": "globex", "user": "u-1"}', '{"org": "acme"}', "null"]


async def shape(db: Database) -> tuple[set[str], set[str], set[str]]:
    """The tables, the spend table's columns and the projects table's columns."""

    def read(connection: Any) -> tuple[set[str], set[str], set[str]]:
        found = inspect(connection)
        return (
            set(found.get_table_names()),
            {c["name"] for c in found.get_columns("spend")},
            {c["name"] for c in found.get_columns("projects")},
        )

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def seed(db: Database) -> None:
    """Spend rows as 0007 wrote them, across hours and days (a fraction of a second
    before an hour included)."""
    base = datetime(2025, 1, 31, 22, 59, 59, 999_999, tzinfo=UTC)
    async with db.engine.begin() as connection:
        for n in range(30):
            await connection.execute(
                text(
                    "INSERT INTO spend (request_id, ts, key_id, project_id, endpoint, model, "
                    "provider, upstream_model, input_tokens, output_tokens, cache_read_tokens, "
                    "cache_write_tokens, reasoning_tokens, cost_usd, cost_pico, priced, "
                    "estimated, status, latency_ms, stream, cached, attempts, metadata) VALUES "
                    "(:rid, :ts, :key, 'proj_a', 'chat.completions', :model, :provider, 'up', "
                    ":tokens, 3, 0, 0, 0, :usd, :pico, :priced, false, :status, 1.5, false, false, "
                    "1, :metadata)"
                ),
                {
                    "rid": f"req_{n}",
                    "ts": base + timedelta(minutes=37 * n) if n else base,
                    "key": None if n % 7 == 0 else f"key_{n % 3}",
                    "model": "m1" if n % 2 else "m2",
                    "provider": None if n % 5 == 0 else "oa",
                    "tokens": 10 + n,
                    "usd": f"0.000{n:03d}",
                    "pico": n * 1_000_000_00,
                    "priced": n % 4 != 0,
                    "status": 200 if n % 6 else 502,
                    "metadata": SETS[n % len(SETS)],
                },
            )


async def report(db: Database, **question: Any) -> Any:
    async with db.reader() as session:
        return await spend.report(session, **question)


async def test_0008_up_down_up_with_rows(database_url: str) -> None:
    assert head_revision() == HEAD_REVISION
    db = Database(database_url)
    try:
        await migrate(db, "0007")
        await seed(db)
        await migrate(db, "0008")
        tables, spend_columns, project_columns = await shape(db)
        assert tables >= NEW_TABLES
        assert "user_agent" in spend_columns and "capture" in project_columns

        # The rollups filled from the rows answer what the rows answer.
        since = datetime(2025, 2, 1, 3, 20, tzinfo=UTC)
        for group_by in (None, "key", "model", "provider", "day", "endpoint", "metadata.org"):
            for window in ({}, {"since": since}, {"until": since}):
                from_cells = await report(db, group_by=group_by, **window)
                async with db.reader() as session:
                    # The rows alone (a range inside one hour reads only rows): summed
                    # hour by hour, it must agree with the cells.
                    groups: dict[Any, int] = {}
                    start = datetime(2025, 1, 31, 22, tzinfo=UTC)
                    for hour in range(24):
                        low = start + timedelta(hours=hour)
                        high = low + timedelta(hours=1)
                        if "since" in window:
                            low = max(low, window["since"])
                        if "until" in window:
                            high = min(high, window["until"])
                        if low >= high:
                            continue
                        part, _ = await spend.report(
                            session, group_by=group_by or "endpoint", since=low, until=high
                        )
                        for row in part:
                            key = row["group"] if group_by else None
                            groups[key] = groups.get(key, 0) + row["requests"]
                counted = (
                    {row["group"]: row["requests"] for row in from_cells[0]}
                    if group_by
                    else ({None: from_cells[1]["requests"]} if from_cells[1]["requests"] else {})
                )
                assert counted == groups, (group_by, window)
        _, totals = await report(db, group_by=None)
        assert totals["requests"] == 30
        assert totals["unpriced_requests"] == 8
        assert totals["cost_usd"] == Decimal(sum(n * 1_000_000_00 for n in range(30))) / 10**12
        by_org, _ = await report(db, group_by="metadata.org")
        assert {row["group"]: row["requests"] for row in by_org} == {
            "acme": 12,
            "globex": 6,
            None: 12,
        }

        await migrate(db, "0007", down=True)
        tables, spend_columns, project_columns = await shape(db)
        assert not NEW_TABLES & tables
        assert "user_agent" not in spend_columns and "capture" not in project_columns
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("SELECT COUNT(*) FROM spend"))).scalar() == 30

        await migrate(db, "0008")
        _, again = await report(db, group_by=None)
        assert again == totals
    finally:
        await db.aclose()
