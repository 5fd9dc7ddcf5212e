"""Retention: old request-log rows, spend detail and bodies are deleted in batches, the
rollups stay, and nothing a budget, a key's spend or a spend report says changes; on
SQLite and Postgres, in a pass and as the gateway's background task."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from requestlog_support import (
    admin,
    chat,
    new_key,
    ok,
    scalar,
    settings_for,
    spend_record,
    write,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer
from services import shared_postgres_database
from tollway.config_retention import RetentionConfig
from tollway.metering.budget import LIFETIME, spent_in_db
from tollway.metering.retention import Retention, horizons
from tollway.metering.sqlite_ledger import SqliteLedger
from tollway.settings import ConfigError, Settings, load_settings
from tollway.store import spend
from tollway.store.db import Database

NOW = datetime(2025, 6, 15, 12, 30, tzinfo=UTC)
COST = Decimal("0.25")


def _ages() -> list[dict[str, Any]]:
    """Calls of every age, with and without spend."""
    out = []
    for days in (1, 10, 45, 120):
        ts = NOW - timedelta(days=days, minutes=7)
        for n in range(5):
            out.append(spend_record(f"spent_{days}_{n}", ts, cost_usd=COST))
            out.append(
                spend_record(
                    f"free_{days}_{n}",
                    ts,
                    input_tokens=0,
                    output_tokens=0,
                    cost_usd=Decimal(0),
                    status=401,
                )
            )
    return out


def _bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "request_id": r["request_id"],
            "ts": r["ts"],
            "request_body": "{}",
            "response_body": "{}",
            "request_bytes": 2,
            "response_bytes": 2,
        }
        for r in records
    ]


async def _state(db: Database) -> dict[str, Any]:
    async with db.reader() as session:
        _, totals = await spend.report(session, group_by=None)
        lifetime = await spend.total_cost(session, key_id="key_a")
    return {
        "totals": totals,
        "lifetime": lifetime,
        "budget_seed": await spent_in_db(db, "key", "key_a", LIFETIME),
        "month_seed": await spent_in_db(
            db, "project", "proj_a", NOW.replace(day=1, hour=0, minute=30)
        ),
    }


async def _ids(db: Database, table: str) -> set[str]:
    from sqlalchemy import text

    async with db.reader() as session:
        return {row[0] for row in await session.execute(text(f"SELECT request_id FROM {table}"))}


async def test_a_pass_deletes_what_is_past_and_changes_no_total(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        records = _ages()
        await write(db, records, _bodies(records))
        before = await _state(db)
        assert before["totals"]["requests"] == 40

        config = RetentionConfig(requests_days=30, spend_days=90, bodies_days=7, batch=3)
        swept = await Retention(db, config).sweep(NOW)
        kept = await _ids(db, "spend")
        assert kept == {
            f"{kind}_{days}_{n}" for kind in ("spent", "free") for days in (1, 10) for n in range(5)
        } | {f"spent_45_{n}" for n in range(5)}
        assert (swept.rows, swept.no_spend_rows) == (10, 5)
        assert await _ids(db, "request_bodies") == {
            f"{k}_1_{n}" for k in ("spent", "free") for n in range(5)
        }
        # Everything a budget, a key's spend or a report says is what it was.
        assert await _state(db) == before
        # Nothing is left to delete.
        again = await Retention(db, config).sweep(NOW)
        assert (again.rows, again.no_spend_rows, again.bodies) == (0, 0, 0)

        # Spend detail kept for ever: only calls without spend go.
        await Retention(
            db, RetentionConfig(requests_days=5, spend_days=None, bodies_days=None)
        ).sweep(NOW)
        assert await _ids(db, "spend") == {
            f"spent_{d}_{n}" for d in (1, 10, 45) for n in range(5)
        } | {f"free_1_{n}" for n in range(5)}
        # A short spend retention deletes every old row; the totals stay.
        await Retention(db, RetentionConfig(requests_days=2, spend_days=2, bodies_days=1)).sweep(
            NOW
        )
        assert await _ids(db, "spend") == {
            f"{k}_1_{n}" for k in ("spent", "free") for n in range(5)
        }
        assert await _ids(db, "request_bodies") == set()
        assert await _state(db) == before
        if db.sqlite_file is not None:
            ledger = SqliteLedger(db.sqlite_file, "test")
            try:
                seeded = await ledger._run(
                    lambda conn: ledger._spent_in_records(conn, ("key", "key_a", LIFETIME))
                )
            finally:
                await ledger.aclose()
            assert seeded == before["budget_seed"] == 20 * COST * 1_000_000_000
    finally:
        await db.aclose()


def test_horizons() -> None:
    now = NOW
    days = timedelta(days=1)
    assert horizons(RetentionConfig(), now) == horizons(
        RetentionConfig(requests_days=30, spend_days=None, bodies_days=7), now
    )
    default = horizons(RetentionConfig(), now)
    assert (default.rows, default.no_spend, default.bodies) == (
        None,
        now - 30 * days,
        now - 7 * days,
    )
    shorter_spend = horizons(RetentionConfig(requests_days=30, spend_days=10), now)
    assert (shorter_spend.rows, shorter_spend.no_spend) == (now - 30 * days, None)
    keep_all = horizons(RetentionConfig(requests_days=None, spend_days=10, bodies_days=None), now)
    assert keep_all == horizons(
        RetentionConfig(requests_days=None, spend_days=None, bodies_days=None), now
    )
    assert (keep_all.rows, keep_all.no_spend, keep_all.bodies) == (None, None, None)


@pytest.mark.parametrize(
    ("retention", "field"),
    [
        ({"requests_days": 0}, "retention.requests_days"),
        ({"spend_days": -1}, "retention.spend_days"),
        ({"bodies_days": "a week"}, "retention.bodies_days"),
        ({"interval_seconds": 0}, "retention.interval_seconds"),
        ({"batch": 0}, "retention.batch"),
        ({"keep": 3}, "retention.keep"),
    ],
)
def test_bad_retention_settings_name_the_field(
    retention: dict[str, Any], field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tollway.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"retention": retention}))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert field in str(error.value)
    assert Settings(retention={"requests_days": 3}).retention.requests_days == 3


@pytest.fixture(params=["sqlite", "postgres"])
def swept_gateway(request: pytest.FixtureRequest, fake_server: FakeUpstream, tmp_path: Path) -> Any:
    """A gateway whose retention runs every second: calls kept 1 day, spend 2, bodies 1."""
    retention = {"requests_days": 1, "spend_days": 2, "bodies_days": 1, "interval_seconds": 1}

    def start(url: str | None) -> GatewayServer:
        return GatewayServer(
            settings_for(fake_server, tmp_path / "data", url, retention=retention)
        ).start()

    if request.param == "sqlite":
        server = start(None)
        yield server
        server.stop()
    else:
        with shared_postgres_database() as url:
            server = start(url)
            yield server
            server.stop()


def test_the_background_task_deletes_and_budgets_hold(
    swept_gateway: GatewayServer, fake_server: FakeUpstream
) -> None:
    gw = swept_gateway
    url = gw.settings.database_path_url
    with admin(gw.url) as api:
        key = new_key(api, max_budget_usd="1")
        now = datetime.now(UTC)
        old = [
            spend_record(
                f"old_{n}",
                now - timedelta(days=3),
                key_id=key["id"],
                project_id=key["project_id"],
                cost_usd=Decimal("0.6"),
            )
            for n in range(2)
        ]

        async def seed_and_wait() -> None:
            db = Database(url)
            try:
                await write(db, old, _bodies(old))
                for _ in range(200):
                    if (
                        await scalar(db, "SELECT COUNT(*) FROM spend WHERE request_id LIKE 'old_%'")
                        == 0
                    ):
                        break
                    await asyncio.sleep(0.05)
                assert (
                    await scalar(db, "SELECT COUNT(*) FROM spend WHERE request_id LIKE 'old_%'")
                    == 0
                )
                assert (
                    await scalar(
                        db, "SELECT COUNT(*) FROM request_bodies WHERE request_id LIKE 'old_%'"
                    )
                    == 0
                )
            finally:
                await db.aclose()

        asyncio.run(seed_and_wait())
        shown = ok(api.get(f"/keys/{key['id']}"))
        assert Decimal(shown["spend_usd"]["lifetime"]) == Decimal("1.2")
        report = ok(api.get("/spend", params={"key": key["id"]}))
        assert report["totals"]["requests"] == 2 and Decimal(
            report["totals"]["cost_usd"]
        ) == Decimal("1.2")
        # The budget was spent by calls whose rows are gone: it still refuses.
        refused = chat(gw.url, key["key"])
        assert refused.status_code == 402, refused.text
