"""The gateway keeps running totals of spend in the background (up to the current
hour), a late record moves their horizon back in its own transaction, and reports over
every key read them and stay exact; on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from requestlog_support import eventually, ok, scalar, spend_record, write

from harness import GatewayServer
from tollway.store import running
from tollway.store.db import Database
from tollway.store.rollups import HOUR, bucket
from tollway.store.running import MARGIN

HORIZON = "SELECT horizon FROM spend_running_state WHERE id = 1"


def test_running_totals_are_kept_and_a_late_record_moves_them_back(
    rlgw: GatewayServer, api: httpx.Client
) -> None:
    url = rlgw.settings.database_path_url

    def horizon() -> int:
        async def read() -> int:
            db = Database(url)
            try:
                return int(await scalar(db, HORIZON))
            finally:
                await db.aclose()

        return asyncio.run(read())

    # The task runs at startup: the totals reach the current hour (five minutes into it).
    eventually(lambda: horizon() >= bucket(datetime.now(UTC) - MARGIN, HOUR))

    key_id = "key_late_" + os.urandom(4).hex()
    late = datetime.now(UTC) - timedelta(hours=5)
    records = [
        spend_record(f"req_late_{key_id}_{n}", late, key_id=key_id, cost_usd=Decimal("0.5"))
        for n in range(3)
    ]

    async def store() -> None:
        db = Database(url)
        try:
            await write(db, records)
        finally:
            await db.aclose()

    before = horizon()
    asyncio.run(store())
    # Moved back in the records' own transaction, to their hour: running totals up to
    # the old horizon are no longer read (a report planned on it plans again).
    assert horizon() <= bucket(late, HOUR)

    async def read_up_to_old_horizon() -> None:
        db = Database(url)
        try:
            async with db.reader() as session:
                with pytest.raises(running.Moved):
                    await running.totals(session, "key", running.Span(None, before))
        finally:
            await db.aclose()

    asyncio.run(read_up_to_old_horizon())
    window = {"from": (late - timedelta(hours=1)).isoformat(), "group_by": "key"}
    groups = {g["group"]: g for g in ok(api.get("/spend", params=window))["groups"]}
    assert groups[key_id]["requests"] == 3
    assert Decimal(groups[key_id]["cost_usd"]) == Decimal("1.5")
