"""How fast spend reports answer at a million spend rows, on SQLite and on Postgres.

Builds each database through Tollway's own migrations, bulk-loads N spend rows spread
uniformly over the last 30 days (1,000 keys in 50 projects; each key calls two of 12
models, each model on one of 4 providers and one endpoint; metadata org and user), and
their rollup cells, computed by the writer's own code (``store.rollups.cells``). Then
times each breakdown the management API answers (``store.spend.report``: median of
``--repeat`` runs after one warm-up) over the last 30 days, and checks that the rollups
and the rows agree.

Postgres is the local server (127.0.0.1:5432, trust auth, user postgres); the bench
creates a database of its own and drops it afterwards. ``--skip-postgres`` runs SQLite
only. The per-record cost of the journal append (what makes a record crash-proof) is
printed at the end.

    .venv/bin/python bench/spend_report.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tollway.metering.journal import Journal
from tollway.store import spend as spend_store
from tollway.store.db import Database
from tollway.store.rollups import KEY, SUMS, cells

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DAYS = 30
KEYS = 1000
PROJECTS = 50
# model -> (provider, endpoint)
MODELS = {
    **{f"gpt-{i}": ("openai", "chat.completions") for i in range(4)},
    **{f"claude-{i}": ("anthropic", "messages") for i in range(4)},
    **{f"gemini-{i}": ("gemini", "chat.completions") for i in range(2)},
    **{f"embed-{i}": ("local", "embeddings") for i in range(2)},
}
COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "project_id",
    "endpoint",
    "model",
    "provider",
    "upstream_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_pico",
    "priced",
    "estimated",
    "status",
    "latency_ms",
    "ttft_ms",
    "stream",
    "cached",
    "error",
    "attempts",
    "metadata",
    "user_agent",
)


def generate(rows: int, now: datetime) -> Iterator[dict[str, Any]]:
    """Spend rows as ``spend_rows.to_row`` makes them (deterministic)."""
    rng = random.Random(7)
    names = list(MODELS)
    key_models = [rng.sample(names, 2) for _ in range(KEYS)]
    for i in range(rows):
        key = rng.randrange(KEYS)
        model = rng.choice(key_models[key])
        provider, endpoint = MODELS[model]
        pico = rng.randrange(1, 50_000_000_000)
        status = 200 if rng.random() < 0.97 else 502
        yield {
            "request_id": f"req_{i:024x}",
            "ts": now - timedelta(microseconds=rng.randrange(DAYS * 86_400 * 1_000_000)),
            "key_id": f"key_{key:016x}",
            "project_id": f"proj_{key % PROJECTS:016x}",
            "endpoint": endpoint,
            "model": model,
            "provider": provider,
            "upstream_model": model + "-upstream",
            "input_tokens": rng.randrange(4000),
            "output_tokens": rng.randrange(800),
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": Decimal(pico) / 10**12,
            "cost_pico": pico,
            "priced": rng.random() < 0.99,
            "estimated": False,
            "status": status,
            "latency_ms": 12.5,
            "ttft_ms": None,
            "stream": False,
            "cached": False,
            "error": None if status == 200 else "upstream_error",
            "attempts": 1,
            "metadata": {"org": f"org-{key % PROJECTS}", "user": f"u-{key}"},
            "user_agent": "bench/1.0",
        }


def _sqlite_value(row: dict[str, Any], column: str) -> Any:
    value = row[column]
    if column == "ts":
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if column == "cost_usd":
        return str(value)
    if column == "metadata":
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


def load_sqlite(path: Path, rows: list[dict[str, Any]], rollups: list[dict[str, Any]]) -> None:
    """The rows and their cells with the stdlib driver, in one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    spend_sql = f"INSERT INTO spend ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    conn.executemany(spend_sql, ([_sqlite_value(r, c) for c in COLUMNS] for r in rows))
    names = (*KEY, *SUMS)
    cell_sql = (
        f"INSERT INTO spend_rollups ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    )
    conn.executemany(cell_sql, ([cell[n] for n in names] for cell in rollups))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def load_postgres(
    database: str, rows: list[dict[str, Any]], rollups: list[dict[str, Any]]
) -> None:
    """The rows and their cells with COPY."""
    conn = await asyncpg.connect(database=database, **PG)
    try:
        records = (
            tuple(orjson.dumps(r[c]).decode() if c == "metadata" else r[c] for c in COLUMNS)
            for r in rows
        )
        await conn.copy_records_to_table("spend", records=records, columns=list(COLUMNS))
        names = (*KEY, *SUMS)
        await conn.copy_records_to_table(
            "spend_rollups",
            records=(tuple(cell[n] for n in names) for cell in rollups),
            columns=list(names),
        )
        await conn.execute("VACUUM ANALYZE spend")
        await conn.execute("VACUUM ANALYZE spend_rollups")
    finally:
        await conn.close()


def cases(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The breakdowns timed: every group over the last 30 days, and filtered ones."""
    month = {"since": now - timedelta(days=DAYS), "until": now}
    out: list[tuple[str, dict[str, Any]]] = [("totals, 30 days", {"group_by": None, **month})]
    for group in ("key", "project", "model", "provider", "day", "endpoint"):
        out.append((f"by {group}, 30 days", {"group_by": group, **month}))
    out += [
        ("one key, by model, 30 days", {"group_by": "model", "key_id": f"key_{42:016x}", **month}),
        (
            "one project, by key, 30 days",
            {"group_by": "key", "project_id": f"proj_{7:016x}", **month},
        ),
        (
            "one project, by day, 30 days",
            {"group_by": "day", "project_id": f"proj_{7:016x}", **month},
        ),
        ("by model, all time (no range)", {"group_by": "model"}),
        ("by model, last 24 h", {"group_by": "model", "since": now - timedelta(days=1)}),
        ("by metadata.org, 30 days (rows)", {"group_by": "metadata.org", **month}),
    ]
    return out


async def time_reports(url: str, repeat: int, now: datetime) -> list[tuple[str, float]]:
    """Median milliseconds of each breakdown."""
    db = Database(url)
    results = []
    try:
        for label, args in cases(now):
            samples = []
            for attempt in range(repeat + 1):
                started = time.perf_counter()
                async with db.reader() as session:
                    await spend_store.report(session, **args)
                if attempt:  # the first run warms caches and the pool
                    samples.append((time.perf_counter() - started) * 1000)
            results.append((label, statistics.median(samples)))
    finally:
        await db.aclose()
    return results


async def agree(url: str, rows: list[dict[str, Any]], now: datetime) -> None:
    """The 30-day totals from the rollups equal the sum over the generated rows."""
    since = now - timedelta(days=DAYS)
    want = sum(r["cost_pico"] for r in rows if since <= r["ts"] < now)
    db = Database(url)
    try:
        async with db.reader() as session:
            _, totals = await spend_store.report(session, group_by=None, since=since, until=now)
    finally:
        await db.aclose()
    assert totals["cost_usd"] == Decimal(want) / 10**12, "rollups disagree with the rows"
    assert totals["requests"] == sum(1 for r in rows if since <= r["ts"] < now)


async def migrated(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.aclose()


async def run_sqlite(
    folder: Path,
    rows: list[dict[str, Any]],
    rollups: list[dict[str, Any]],
    repeat: int,
    now: datetime,
) -> list[tuple[str, float]]:
    path = folder / "spend.db"
    url = f"sqlite:///{path}"
    await migrated(url)
    started = time.perf_counter()
    load_sqlite(path, rows, rollups)
    print(
        f"SQLite: loaded in {time.perf_counter() - started:.1f} s ({os.path.getsize(path) / 2**20:.0f} MiB)"
    )
    await agree(url, rows, now)
    return await time_reports(url, repeat, now)


async def run_postgres(
    rows: list[dict[str, Any]], rollups: list[dict[str, Any]], repeat: int, now: datetime
) -> list[tuple[str, float]]:
    name = f"tollway_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(database="postgres", **PG)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        await migrated(url)
        started = time.perf_counter()
        await load_postgres(name, rows, rollups)
        print(f"Postgres: loaded in {time.perf_counter() - started:.1f} s")
        await agree(url, rows, now)
        return await time_reports(url, repeat, now)
    finally:
        admin = await asyncpg.connect(database="postgres", **PG)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    now = datetime.now(UTC)
    started = time.perf_counter()
    rows = list(generate(args.rows, now))
    rollups = cells(rows)
    hourly = sum(1 for cell in rollups if cell["span"] == 3600)
    print(
        f"{args.rows:,} spend rows over {DAYS} days, {len(rollups):,} rollup cells "
        f"({hourly:,} hourly, {len(rollups) - hourly:,} daily), built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    results: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["SQLite"] = await run_sqlite(Path(folder), rows, rollups, args.repeat, now)
    if not args.skip_postgres:
        results["Postgres"] = await run_postgres(rows, rollups, args.repeat, now)
    kinds = list(results)
    print(f"\n| breakdown ({args.rows:,} rows) | " + " | ".join(f"{k} ms" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for index, (label, _) in enumerate(results["SQLite"]):
        print(f"| {label} | " + " | ".join(f"{results[k][index][1]:.1f}" for k in kinds) + " |")
    print(f"\njournal append (crash-proof record): {time_journal(20_000):.1f} us per record")


if __name__ == "__main__":
    asyncio.run(main())
