"""Running totals stay exact while compactions and spend writers run at the same time:
writers storing late records (older than the clock) race compactions, on several
connections (on Postgres, real concurrency on the horizon row), and every report over
every key afterwards equals the sum over the rows; on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from requestlog_support import spend_record, write

from tollway.metering.compaction import Compaction
from tollway.store import spend
from tollway.store.db import Database

BASE = datetime(2025, 5, 1, tzinfo=UTC)
KEYS = [f"key_{n}" for n in range(6)]
# Compactions reach past every record: all of them are late for the writers' clock.
LATER = BASE + timedelta(days=3)


async def _race(url: str) -> None:
    db = Database(url)
    rng = random.Random(11)
    try:
        await db.migrate()
        batches = [
            [
                spend_record(
                    f"req_{batch}_{n}",
                    BASE + timedelta(minutes=rng.randrange(2 * 24 * 60), seconds=rng.random()),
                    key_id=rng.choice(KEYS),
                    cost_usd=Decimal(rng.randrange(1, 10**6)) / 10**9,
                )
                for n in range(rng.randrange(1, 30))
            ]
            for batch in range(40)
        ]
        compaction = Compaction(db)

        async def writer(mine: list[list[dict[str, object]]]) -> None:
            for batch in mine:
                await write(db, batch)
                await asyncio.sleep(0)

        async def compactor() -> None:
            for _ in range(15):
                await compaction.catch_up(LATER)
                await asyncio.sleep(0.01)

        await asyncio.gather(
            writer(batches[0::3]), writer(batches[1::3]), writer(batches[2::3]), compactor()
        )
        await compaction.catch_up(LATER)

        records = [record for batch in batches for record in batch]
        for since, until in [
            (None, None),
            (BASE + timedelta(hours=5, minutes=20), BASE + timedelta(hours=40, minutes=50)),
            (BASE + timedelta(hours=30), None),
        ]:
            async with db.reader() as session:
                groups, totals = await spend.report(
                    session, group_by="key", since=since, until=until
                )
            inside = [
                r
                for r in records
                if (since is None or datetime.fromisoformat(str(r["ts"])) >= since)
                and (until is None or datetime.fromisoformat(str(r["ts"])) < until)
            ]
            assert {g["group"]: g["requests"] for g in groups} == dict(
                Counter(str(r["key_id"]) for r in inside)
            )
            assert totals["cost_usd"] == sum(Decimal(str(r["cost_usd"])) for r in inside)
    finally:
        await db.aclose()


def test_compactions_racing_late_writers_stay_exact(database_url: str) -> None:
    asyncio.run(_race(database_url))
