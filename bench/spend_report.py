"""How fast spend reports stay at millions of rows, and what a crash-proof record costs.

Seeds a fresh SQLite database (through Tollway's own migrations) with N spend rows spread
over 90 days, 2,000 keys, 200 projects and 12 models, then times each report the
management API runs (``store.spend.report``) and the per-record cost of the journal
append that makes a completed call survive ``kill -9``.

    .venv/bin/python bench/spend_report.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tollway.metering.journal import Journal
from tollway.store import spend as spend_store
from tollway.store.db import Database

MODELS = [f"model-{i}" for i in range(12)]
PROVIDERS = ["openai", "anthropic", "gemini"]


def seed(path: Path, rows: int) -> None:
    """Insert ``rows`` spend records with the stdlib driver (fast, one transaction)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    batch: list[tuple[Any, ...]] = []
    columns = (
        "request_id, ts, key_id, project_id, endpoint, model, provider, upstream_model, "
        "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, cost_usd, cost_pico, priced, estimated, status, latency_ms, "
        "ttft_ms, stream, cached, error, attempts, metadata"
    )
    sql = f"INSERT INTO spend ({columns}) VALUES ({', '.join('?' * 25)})"
    for i in range(rows):
        ts = now - timedelta(seconds=rng.randrange(90 * 86400))
        key = rng.randrange(2000)
        pico = rng.randrange(1, 50_000_000_000)
        batch.append(
            (
                f"req_{i:024x}",
                ts.strftime("%Y-%m-%d %H:%M:%S.%f"),
                f"key_{key:016x}",
                f"proj_{key % 200:016x}",
                "chat.completions",
                rng.choice(MODELS),
                rng.choice(PROVIDERS),
                "upstream",
                rng.randrange(4000),
                rng.randrange(800),
                0,
                0,
                0,
                str(pico / 10**12),
                pico,
                1,
                0,
                200,
                12.5,
                None,
                0,
                0,
                None,
                1,
                f'{{"org": "org-{key % 50}"}}',
            )
        )
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def time_reports(url: str, repeat: int) -> list[tuple[str, float]]:
    """Median milliseconds of each report."""
    db = Database(url)
    now = datetime.now(UTC)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("totals, last 24 h", {"group_by": None, "since": now - timedelta(days=1)}),
        ("by model, last 7 days", {"group_by": "model", "since": now - timedelta(days=7)}),
        ("by day, last 30 days", {"group_by": "day", "since": now - timedelta(days=30)}),
        ("one key, by model, all time", {"group_by": "model", "key_id": f"key_{42:016x}"}),
        (
            "one project, by key, 30 days",
            {"group_by": "key", "project_id": f"proj_{7:016x}", "since": now - timedelta(days=30)},
        ),
        (
            "by metadata.org, last 24 h",
            {"group_by": "metadata.org", "since": now - timedelta(days=1)},
        ),
        ("by project, all time (full scan)", {"group_by": "project"}),
    ]
    results = []
    for label, args in cases:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            async with db.reader() as session:
                await spend_store.report(session, **args)
            samples.append((time.perf_counter() - started) * 1000)
        results.append((label, statistics.median(samples)))
    await db.aclose()
    return results


def time_journal(records: int) -> float:
    """Microseconds per journal append (the write that makes a record crash-proof)."""
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder))
        record = {
            "request_id": "req_0123456789abcdef01234567",
            "ts": datetime.now(UTC).isoformat(),
            "key_id": "key_0123456789abcdef",
            "project_id": "proj_0123456789abcdef",
            "endpoint": "chat.completions",
            "model": "gpt-4o-mini",
            "input_tokens": 57,
            "output_tokens": 7,
            "cost_usd": "0.00001275",
            "metadata": {"org": "acme", "session": "42"},
        }
        started = time.perf_counter()
        for _ in range(records):
            journal.append(record)
        elapsed = time.perf_counter() - started
        journal.close()
    return elapsed / records * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spend.db"
        url = f"sqlite:///{path}"
        db = Database(url)
        await db.migrate()
        await db.aclose()
        started = time.perf_counter()
        seed(path, args.rows)
        print(
            f"seeded {args.rows:,} spend rows in {time.perf_counter() - started:.1f} s "
            f"({os.path.getsize(path) / 2**20:.0f} MiB)"
        )
        print(f"\n| report ({args.rows:,} rows, SQLite) | median ms |\n|---|---|")
        for label, ms in await time_reports(url, args.repeat):
            print(f"| {label} | {ms:.1f} |")
    print(f"\njournal append (crash-proof record): {time_journal(20_000):.1f} us per record")


if __name__ == "__main__":
    asyncio.run(main())
