"""How fast every spend report answers at a million calls, on SQLite and on Postgres.

For each database (SQLite in a temp dir; on Postgres, a database of its own, dropped
afterwards): Tollway's migrations up to 0007, the revision before the rollups; N spend
rows made inside the database by one INSERT ... SELECT, spread over the last 30 days
(1,000 keys in 50 projects, each key on two of 12 models, 4 providers, 3 endpoints,
metadata ``org`` and ``user``; every column a hash of the row number, so both databases
hold the same rows); the upgrade to head, whose 0008 fills the rollup cells from the
rows as on a real upgrade; then the running totals, built from the cells as the
gateway's background task builds them (``metering/compaction.py``). A gateway
(``tollway serve``) is started on the database and every breakdown of
``GET /api/v1/spend`` over the last 30 days is timed over HTTP: median and slowest of
``--repeat`` after one warm-up, and the CPU each answer took (the gateway's threads and,
on Postgres, the server processes of its connections), which the other programs on the
machine do not inflate. Each answer is checked against the same breakdown computed from
the rows alone (a GROUP BY over the spend table), whose time is shown too.

    .venv/bin/python bench/spend_report.py [--rows 1000000] [--repeat 5] [--skip-postgres]

Postgres is the local server (127.0.0.1:5432, trust auth, user postgres). The load
average is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic import command
from alembic.config import Config

from services import HOST, Service, clean_env, free_port
from tollway.metering.compaction import Compaction
from tollway.store.db import Database
from tollway.store.tables import Project

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MASTER_KEY = "sk-bench-master-" + "0" * 32
TOLLWAY = Path(sys.executable).parent / "tollway"
DAYS = 30
KEYS = 1000
PROJECTS = 50
TARGET_MS = 100.0
PRIME = 2**31 - 1  # the hashes are below it: every product stays inside 64 bits


def _hash(seed: int) -> str:
    """A 31-bit hash of ``i``: a cubic polynomial modulo a prime, each factor a different
    line. Only ``i`` is named, once per factor: SQLite substitutes a subquery's columns
    into the outer query, so a hash built from an earlier one would be computed over and
    over."""
    a, b, c = (7919 * seed + 48271, 104729 * seed + 69621, 15485863 * seed + 16807)
    return (
        f"((((i * {a} + {seed}) % {PRIME}) * ((i * {b} + {2 * seed + 1}) % {PRIME}) "
        f"% {PRIME}) * ((i * {c} + {3 * seed + 2}) % {PRIME}) % {PRIME})"
    )


def _hashes(numbers: str, seeds: dict[str, int]) -> str:
    """A query of ``i`` and one hash of it per seed, from the query ``numbers``."""
    hashes = ", ".join(f"{_hash(seed)} AS {name}" for name, seed in seeds.items())
    return f"SELECT i, {hashes} FROM ({numbers}) AS numbers"


def generate_sql(dialect: str, rows: int, now: datetime) -> str:
    """One INSERT ... SELECT that makes ``rows`` spend rows (schema 0007)."""
    if dialect == "sqlite":
        numbers = (
            f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq "
            f"WHERE i < {rows - 1}) SELECT i FROM seq"
        )
    else:
        numbers = f"SELECT generate_series(CAST(0 AS BIGINT), {rows - 1}) AS i"
    hashes = _hashes(numbers, {"ha": 1, "hb": 2, "hc": 3, "hd": 4, "he": 5})
    now_us = int(now.timestamp()) * 1_000_000 + now.microsecond
    # A key calls two models; each model has one provider and one endpoint.
    picked = f"SELECT *, ha % {KEYS} AS k, (hb % 2) AS other FROM ({hashes}) AS h"
    chosen = (
        f"SELECT *, (k * 7 + other * (1 + k % 11)) % 12 AS m, "
        f"{now_us} - ((hc % {DAYS * 86_400}) * 1000000 + hd % 1000000) AS t_us "
        f"FROM ({picked}) AS p"
    )
    if dialect == "sqlite":
        ts = (
            "strftime('%Y-%m-%d %H:%M:%S', t_us / 1000000, 'unixepoch') || '.' || "
            "printf('%06d', t_us % 1000000)"
        )
        cost_usd = "CAST(1 + he * 23 AS REAL) / 1e12"
        metadata = '\'{"org": "org-\' || (k % 50) || \'", "user": "u-\' || k || \'"}\''
    else:
        ts = "TIMESTAMPTZ 'epoch' + t_us * INTERVAL '1 microsecond'"
        cost_usd = "(1 + he * 23)::numeric / 1000000000000"
        metadata = (
            'CAST(\'{"org": "org-\' || (k % 50) || \'", "user": "u-\' || k || \'"}\' AS JSON)'
        )
    model = (
        "CASE WHEN m < 4 THEN 'gpt-' || m WHEN m < 8 THEN 'claude-' || (m - 4) "
        "WHEN m < 10 THEN 'gemini-' || (m - 8) ELSE 'embed-' || (m - 10) END"
    )
    provider = (
        "CASE WHEN m < 4 THEN 'openai' WHEN m < 8 THEN 'anthropic' "
        "WHEN m < 10 THEN 'gemini' ELSE 'local' END"
    )
    endpoint = (
        "CASE WHEN m < 4 THEN 'chat.completions' WHEN m < 8 THEN 'messages' "
        "WHEN m < 10 THEN 'chat.completions' ELSE 'embeddings' END"
    )
    status = "CASE WHEN (hd >> 10) % 100 < 97 THEN 200 ELSE 502 END"
    columns = {
        "request_id": "'req_' || i",
        "ts": ts,
        "key_id": "'key_' || (100000 + k)",
        "project_id": f"'proj_' || (1000 + k % {PROJECTS})",
        "endpoint": endpoint,
        "model": model,
        "provider": provider,
        "upstream_model": f"{model} || '-upstream'",
        "input_tokens": "(hb >> 1) % 4000",
        "output_tokens": "he % 800",
        "cache_read_tokens": "0",
        "cache_write_tokens": "0",
        "reasoning_tokens": "0",
        "cost_usd": cost_usd,
        "cost_pico": "1 + he * 23",
        "priced": "(hd >> 20) % 100 < 99",
        "estimated": "FALSE",
        "status": status,
        "latency_ms": "12.5",
        "ttft_ms": "NULL",
        "stream": "FALSE",
        "cached": "FALSE",
        "error": f"CASE WHEN {status} = 200 THEN NULL ELSE 'upstream_error' END",
        "attempts": "1",
        "metadata": metadata,
    }
    return (
        f"INSERT INTO spend ({', '.join(columns)}) "
        f"SELECT {', '.join(columns.values())} FROM ({chosen}) AS c"
    )


@dataclass(frozen=True)
class Case:
    """One breakdown: its label, the query parameters, and the rows' GROUP BY."""

    label: str
    params: dict[str, str]
    group: str | None  # None: totals only
    where: dict[str, str]


def cases() -> list[Case]:
    """Every breakdown ``GET /api/v1/spend`` offers, over the last 30 days; and filtered."""
    out = [Case("totals", {}, None, {})]
    for group in ("key", "project", "model", "provider", "endpoint", "day"):
        out.append(Case(f"by {group}", {"group_by": group}, group, {}))
    for field in ("org", "user"):
        out.append(Case(f"by metadata.{field}", {"group_by": f"metadata.{field}"}, field, {}))
    one_key, one_project = f"key_{100000 + 42}", f"proj_{1000 + 7}"
    out += [
        Case(
            "one key, by model", {"group_by": "model", "key": one_key}, "model", {"key_id": one_key}
        ),
        Case(
            "one project, by key",
            {"group_by": "key", "project": one_project},
            "key",
            {"project_id": one_project},
        ),
        Case(
            "one project, by day",
            {"group_by": "day", "project": one_project},
            "day",
            {"project_id": one_project},
        ),
        Case(
            "one project, by metadata.user",
            {"group_by": "metadata.user", "project": one_project},
            "user",
            {"project_id": one_project},
        ),
    ]
    return out


def _reference_sql(dialect: str, case: Case) -> tuple[str, list[str]]:
    """The breakdown from the rows alone, and the names of its filter parameters."""
    columns = {"key": "key_id", "project": "project_id"}
    if case.group is None:
        group = "NULL"
    elif case.group == "day":
        group = (
            "substr(ts, 1, 10)"
            if dialect == "sqlite"
            else "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        )
    elif case.group in ("org", "user"):
        group = (
            f"json_extract(metadata, '$.{case.group}')"
            if dialect == "sqlite"
            else f"metadata->>'{case.group}'"
        )
    else:
        group = columns.get(case.group, case.group)
    marks = ["?", "?"] if dialect == "sqlite" else ["$1", "$2"]
    conditions = [f"ts >= {marks[0]}", f"ts < {marks[1]}"]
    for index, column in enumerate(case.where, start=3):
        conditions.append(f"{column} = {'?' if dialect == 'sqlite' else f'${index}'}")
    sql = (
        f"SELECT {group} AS g, COUNT(*), SUM(input_tokens), SUM(cost_pico) FROM spend "
        f"WHERE {' AND '.join(conditions)} GROUP BY g"
    )
    return sql, list(case.where.values())


def _expected(rows: list[Any]) -> dict[Any, tuple[int, int, Decimal]]:
    return {
        row[0]: (int(row[1]), int(row[2]), Decimal(int(row[3])) / 10**12) for row in rows if row[1]
    }


def _answered(body: dict[str, Any], grouped: bool) -> dict[Any, tuple[int, int, Decimal]]:
    if not grouped:
        totals = body["totals"]
        rows = [{"group": None, **totals}] if totals["requests"] else []
    else:
        rows = body["groups"]
    return {
        row["group"]: (row["requests"], row["input_tokens"], Decimal(row["cost_usd"]))
        for row in rows
    }


@dataclass
class Timing:
    """One breakdown on one database."""

    median_ms: float
    slowest_ms: float
    cpu_ms: float  # per answer: the gateway's threads and the database's processes
    rows_ms: float  # the same breakdown from the rows alone
    groups: int


def cpu_ns(pids: list[int]) -> int:
    """CPU time these processes have used, all their threads (Linux schedstat, ns)."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                total += int((task / "schedstat").read_text().split()[0])
    return total


class SqliteTarget:
    """A SQLite file under test: how to load it and how to ask it from the rows."""

    dialect = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "spend.db"
        self.url = f"sqlite:///{self.path}"

    def load(self, sql: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the indexes stay in memory
            conn.execute("BEGIN")
            conn.execute(sql)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def analyze(self) -> None:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("ANALYZE")
        finally:
            conn.close()

    async def backends(self) -> list[int]:
        """Database server processes (none: SQLite runs in the gateway)."""
        return []

    async def reference(self, case: Case, since: datetime, until: datetime) -> tuple[float, Any]:
        sql, values = _reference_sql(self.dialect, case)
        text = "%Y-%m-%d %H:%M:%S.%f"
        conn = sqlite3.connect(self.path)
        try:
            started = time.perf_counter()
            rows = conn.execute(
                sql, [since.strftime(text), until.strftime(text), *values]
            ).fetchall()
            return (time.perf_counter() - started) * 1000, rows
        finally:
            conn.close()


class PostgresTarget:
    """A Postgres database under test: how to load it and how to ask it from the rows."""

    dialect = "postgresql"

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"postgresql://postgres@127.0.0.1:5432/{name}"

    async def load(self, sql: str) -> None:
        conn = await asyncpg.connect(database=self.name, **PG)
        try:
            await conn.execute("SET synchronous_commit = off")
            await conn.execute(sql)
        finally:
            await conn.close()

    async def analyze(self) -> None:
        conn = await asyncpg.connect(database=self.name, **PG)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()

    async def backends(self) -> list[int]:
        """The server processes of the gateway's connections to this database."""
        conn = await asyncpg.connect(database="postgres", **PG)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.name
            )
        finally:
            await conn.close()
        return [int(row["pid"]) for row in rows]

    async def reference(self, case: Case, since: datetime, until: datetime) -> tuple[float, Any]:
        sql, values = _reference_sql(self.dialect, case)
        conn = await asyncpg.connect(database=self.name, **PG)
        try:
            started = time.perf_counter()
            rows = await conn.fetch(sql, since, until, *values)
            return (time.perf_counter() - started) * 1000, rows
        finally:
            await conn.close()


async def migrate(url: str, revision: str) -> float:
    """Alembic up to ``revision``, as ``tollway migrate`` does; the seconds it took."""

    def run(connection: Any) -> None:
        config = Config()
        config.set_main_option("script_location", "tollway.store:migrations")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    db = Database(url)
    started = time.perf_counter()
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await db.aclose()
    return time.perf_counter() - started


async def count(url: str, sql: str) -> int:
    """One number from the database."""
    from sqlalchemy import text

    db = Database(url)
    try:
        async with db.reader() as session:
            return int((await session.execute(text(sql))).scalar() or 0)
    finally:
        await db.aclose()


async def add_projects(url: str) -> None:
    """The projects the rows name (the API looks a ``project`` filter up)."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            now = datetime.now(UTC)
            for n in range(PROJECTS):
                project_id = f"proj_{1000 + n}"
                session.add(Project(id=project_id, name=project_id, created_at=now, updated_at=now))
    finally:
        await db.aclose()


async def prepare(target: SqliteTarget | PostgresTarget, rows: int, now: datetime) -> None:
    """Schema 0007, the rows, then the upgrade that fills the rollups."""
    await migrate(target.url, "0007")
    sql = generate_sql(target.dialect, rows, now)
    started = time.perf_counter()
    if isinstance(target, SqliteTarget):
        await asyncio.to_thread(target.load, sql)
    else:
        await target.load(sql)
    loaded = time.perf_counter() - started
    upgraded = await migrate(target.url, "head")
    await add_projects(target.url)
    started = time.perf_counter()
    db = Database(target.url)
    try:
        # What the gateway's background task does after an upgrade, before it is timed.
        await Compaction(db).catch_up()
    finally:
        await db.aclose()
    compacted = time.perf_counter() - started
    if isinstance(target, SqliteTarget):
        await asyncio.to_thread(target.analyze)
    else:
        await target.analyze()
    hourly = await count(target.url, "SELECT COUNT(*) FROM spend_rollups WHERE span = 3600")
    daily = await count(target.url, "SELECT COUNT(*) FROM spend_rollups WHERE span = 86400")
    print(
        f"{target.dialect}: {rows:,} rows inserted in {loaded:.1f} s; upgrade to head "
        f"(rollups filled: {hourly:,} hourly and {daily:,} daily cells) in {upgraded:.1f} s; "
        f"running totals built in {compacted:.1f} s",
        flush=True,
    )


@contextlib.contextmanager
def gateway(url: str, folder: Path) -> Iterator[tuple[str, int]]:
    """``tollway serve`` on the database; its base URL and process id."""
    port = free_port()
    data = folder / f"data-{port}"
    data.mkdir()
    config = folder / f"tollway-{port}.yaml"
    config.write_text(
        f"master_key: {MASTER_KEY}\n"
        f"data_dir: {data}\n"
        f"database_url: {url}\n"
        # The bench's rows must stay what they are while they are measured.
        "retention: {requests_days: null, spend_days: null, bodies_days: null}\n"
        "log: {level: warning}\n"
    )
    service = Service(
        "tollway",
        [str(TOLLWAY), "serve", "--config", str(config), "--host", HOST, "--port", str(port)],
        port,
        "/health/live",
        folder / f"gateway-{port}.log",
    )
    service.start(cwd=folder, env=clean_env())
    try:
        service.wait_ready(120)
        yield f"http://{HOST}:{port}", service.pid
    finally:
        service.stop()


async def measure(
    target: SqliteTarget | PostgresTarget,
    base: str,
    pid: int,
    repeat: int,
    since: datetime,
    until: datetime,
) -> dict[str, Timing]:
    """Each breakdown over HTTP, checked against the rows."""
    results: dict[str, Timing] = {}
    window = {"from": since.isoformat(), "to": until.isoformat()}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=base + "/api/v1", headers=headers, timeout=60) as client:
        for case in cases():
            samples = []
            body: dict[str, Any] = {}
            pids = [pid]
            used = 0
            for attempt in range(repeat + 1):
                if attempt == 1:  # the first one warms the pool and the page cache
                    pids = [pid, *await target.backends()]
                    used = cpu_ns(pids)
                started = time.perf_counter()
                response = client.get("/spend", params={**case.params, **window})
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{case.label}: HTTP {response.status_code} {response.text}")
                body = response.json()
                if attempt:
                    samples.append(elapsed)
            cpu_ms = (cpu_ns(pids) - used) / 1e6 / repeat
            rows_ms, rows = await target.reference(case, since, until)
            want = _expected(rows)
            got = _answered(body, case.group is not None)
            if got != want:
                wrong = [g for g in set(want) | set(got) if want.get(g) != got.get(g)][:3]
                raise SystemExit(
                    f"{target.dialect} {case.label}: the report disagrees with the rows, "
                    f"e.g. {[(g, got.get(g), want.get(g)) for g in wrong]}"
                )
            results[case.label] = Timing(
                statistics.median(samples), max(samples), cpu_ms, rows_ms, len(got)
            )
            print(
                f"  {case.label}: {results[case.label].median_ms:.1f} ms, CPU {cpu_ms:.1f} ms "
                f"({len(got)} groups; from the rows {rows_ms:.0f} ms)",
                flush=True,
            )
    return results


async def run_sqlite(rows: int, repeat: int, now: datetime, since: datetime) -> dict[str, Timing]:
    with tempfile.TemporaryDirectory(prefix="tollway-spend-") as name:
        folder = Path(name)
        target = SqliteTarget(folder)
        await prepare(target, rows, now)
        with gateway(target.url, folder) as (base, pid):
            return await measure(target, base, pid, repeat, since, now)


async def run_postgres(rows: int, repeat: int, now: datetime, since: datetime) -> dict[str, Timing]:
    name = f"tollway_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(database="postgres", **PG)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        with tempfile.TemporaryDirectory(prefix="tollway-spend-") as folder:
            target = PostgresTarget(name)
            await prepare(target, rows, now)
            with gateway(target.url, Path(folder)) as (base, pid):
                return await measure(target, base, pid, repeat, since, now)
    finally:
        admin = await asyncpg.connect(database="postgres", **PG)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def table(results: dict[str, dict[str, Timing]], rows: int) -> str:
    """The results as a Markdown table."""
    kinds = list(results)
    head = f"| breakdown, 30 days ({rows:,} rows) |" + "".join(
        f" {kind} ms: median / slowest | CPU | rows only |" for kind in kinds
    )
    lines = [head, "|---|" + "---|---|---|" * len(kinds)]
    for label in (case.label for case in cases()):
        cells = []
        for kind in kinds:
            timing = results[kind][label]
            mark = "" if timing.median_ms < TARGET_MS else " (over)"
            cells.append(
                f" {timing.median_ms:.1f} / {timing.slowest_ms:.1f}{mark} | "
                f"{timing.cpu_ms:.1f} | {timing.rows_ms:.0f} |"
            )
        lines.append(f"| {label} ({results[kinds[0]][label].groups} groups) |" + "".join(cells))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs", flush=True)
    # Every breakdown asks for the last 30 days, ending now: its ends fall inside hours.
    now = datetime.now(UTC)
    since = now - timedelta(days=DAYS)
    results = {"SQLite": await run_sqlite(args.rows, args.repeat, now, since)}
    if not args.skip_postgres:
        results["Postgres"] = await run_postgres(args.rows, args.repeat, now, since)
    print()
    print(table(results, args.rows))
    over = [
        f"{kind}: {label}"
        for kind, timings in results.items()
        for label, timing in timings.items()
        if timing.median_ms >= TARGET_MS
    ]
    print(f"\nover {TARGET_MS:.0f} ms: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
