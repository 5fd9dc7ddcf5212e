"""No record can stop the spend writer or startup, on SQLite and on Postgres.

A record the database refuses (a NOT NULL column missing) or that cannot fit a column
(a count past 64 bits) goes to the quarantine; the rest of its batch is written. A dead
process's journal holding such records is replayed at start without failing it, and
the quarantine is visible through the API. Text that would not fit (NUL characters, a
201-character model name) is fitted to its column instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from metering_support import (
    HOUSE_GPT,
    MASTER_KEY,
    MESSAGES,
    MODELS,
    Metered,
    MeteredUpstream,
    admin_client,
    new_key,
    providers,
    wait_for_requests,
)
from sqlalchemy import func, select

from fake_upstream import FakeUpstream
from harness import running_gateway
from served import TOLLWAY, clean_env
from services import shared_postgres_database
from tollway.metering import spend_rows
from tollway.metering.journal import JOURNAL_DIR
from tollway.metering.records import Recorder, utc_iso
from tollway.settings import Settings
from tollway.store.db import Database
from tollway.store.rollups import DAY
from tollway.store.tables import QuarantinedSpend, SpendRecord, SpendRollup


def record(request_id: str, **changes: Any) -> dict[str, Any]:
    """A plausible journal record for one call."""
    base: dict[str, Any] = {
        "request_id": request_id,
        "ts": utc_iso(1_790_000_000.0),
        "key_id": "key_1",
        "project_id": "prj_1",
        "endpoint": "chat.completions",
        "model": "gpt-test",
        "provider": "oa",
        "upstream_model": "gpt-upstream-1",
        "status": 200,
        "latency_ms": 1.5,
        "ttft_ms": None,
        "stream": False,
        "cached": False,
        "error": None,
        "attempts": 1,
        "metadata": {"org": "acme"},
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": "0.0001",
        "priced": True,
        "estimated": False,
    }
    base.update(changes)
    return base


def poisoned_batch(tag: str) -> list[dict[str, Any]]:
    """Two good records around two the database cannot take and two it takes fitted."""
    return [
        record(f"req_{tag}_good1"),
        record(f"req_{tag}_huge", input_tokens=10**19),  # past 64 bits: never sent
        record(f"req_{tag}_null", endpoint=None),  # refused by the database
        record(f"req_{tag}_nul", model="gpt\x00test", metadata={"k": "a\x00b"}),
        record(f"req_{tag}_long", model="m" * 201),
        record(f"req_{tag}_good2"),
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'tollway.db'}"
        return
    with shared_postgres_database() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The database, migrated."""
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.aclose()


async def _rows(db: Database) -> dict[str, Any]:
    async with db.reader() as session:
        spend = {r.request_id: r for r in (await session.execute(select(SpendRecord))).scalars()}
        quarantined = list((await session.execute(select(QuarantinedSpend))).scalars())
    return {"spend": spend, "quarantine": quarantined}


def _check(found: dict[str, Any], tag: str) -> None:
    spend = found["spend"]
    assert set(spend) == {f"req_{tag}_{n}" for n in ("good1", "good2", "nul", "long")}
    assert spend[f"req_{tag}_nul"].model == "gpttest"
    assert spend[f"req_{tag}_long"].model == "m" * 200
    reasons = {q.request_id: q.reason for q in found["quarantine"]}
    assert set(reasons) == {f"req_{tag}_huge", f"req_{tag}_null"}
    assert "64-bit" in reasons[f"req_{tag}_huge"]
    kept = {q.request_id: orjson.loads(q.record) for q in found["quarantine"]}
    assert kept[f"req_{tag}_huge"]["input_tokens"] == 10**19  # the whole record is kept


async def test_poisoned_batch_is_written_around_the_poison(
    database: Database, tmp_path: Path
) -> None:
    recorder = Recorder(database, tmp_path / "data")
    await recorder.start()
    try:
        for item in poisoned_batch("live"):
            recorder.record(item)
        assert await recorder.flush()
        assert recorder.pending == 0
        _check(await _rows(database), "live")
        # The writer goes on: the next record lands as usual.
        recorder.record(record("req_live_after"))
        assert await recorder.flush()
        assert "req_live_after" in (await _rows(database))["spend"]
    finally:
        await recorder.aclose()


async def test_a_batch_written_in_chunks_stores_and_counts_each_call_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes a batch a few rows per transaction (so a budget reservation never
    waits out a whole batch): a record already stored, or repeated within the batch
    across a chunk boundary, is stored and added to the rollups once; poison lands in
    the quarantine whatever chunk it falls in."""
    monkeypatch.setattr(spend_rows, "CHUNK_ROWS", 2)
    chunks: list[int] = []
    write_chunk = spend_rows._insert_chunk

    def counted(conn: Any, rows: list[dict[str, Any]], *rest: Any) -> None:
        chunks.append(len(rows))
        write_chunk(conn, rows, *rest)

    monkeypatch.setattr(spend_rows, "_insert_chunk", counted)
    db = Database(f"sqlite:///{tmp_path / 'tollway.db'}")
    await db.migrate()
    recorder = Recorder(db, tmp_path / "data")
    await recorder.start()
    try:
        recorder.record(record("req_chunk_0"))
        assert await recorder.flush()
        batch = [record(f"req_chunk_{n}") for n in range(7)]  # req_chunk_0 is stored
        batch.insert(3, record("req_chunk_1"))  # again, in the next chunk
        batch.insert(5, record("req_chunk_4"))  # twice within one chunk
        for item in [*batch, *poisoned_batch("chunks")]:
            recorder.record(item)
        chunks.clear()
        assert await recorder.flush()
        # 14 rows reach the database (the 10**19 one is refused before): 2 per
        # transaction until the poison fails one, then row by row.
        assert chunks[:6] == [2] * 6
        found = await _rows(db)
        chunked = {rid for rid in found["spend"] if rid.startswith("req_chunk_")}
        assert chunked == {f"req_chunk_{n}" for n in range(7)}
        _check(
            {**found, "spend": {k: v for k, v in found["spend"].items() if "chunks" in k}}, "chunks"
        )
        async with db.reader() as session:
            counted = await session.scalar(
                select(func.sum(SpendRollup.requests)).where(SpendRollup.span == DAY)
            )
        assert counted == len(found["spend"])
    finally:
        await recorder.aclose()
        await db.aclose()


def write_dead_journal(data_dir: Path, records: list[dict[str, Any]]) -> Path:
    """A journal segment as a killed process leaves it (no owner lock held)."""
    folder = data_dir / JOURNAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"spend-deadhost.4242.0badf00d-{os.getpid()}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"\0" * 64)
    return path


async def test_replay_of_a_poisoned_journal_never_fails_start(
    database: Database, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    segment = write_dead_journal(data, poisoned_batch("replay"))
    recorder = Recorder(database, data)
    recovered = await recorder.start()
    try:
        assert recovered == 6
        _check(await _rows(database), "replay")
        assert not segment.exists()
    finally:
        await recorder.aclose()


def test_gateway_starts_on_a_poisoned_journal_and_shows_the_quarantine(
    fake_server: FakeUpstream, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_dead_journal(data, poisoned_batch("app"))
    settings = Settings(
        master_key=MASTER_KEY,
        data_dir=data,
        providers=providers(fake_server),
        models=[{"name": "gpt-test", "provider": "oa"}],
        log={"level": "warning", "access": False},
    )
    with running_gateway(settings) as gateway, admin_client(gateway.url) as api:
        listing = api.get("/spend/quarantine")
        assert listing.status_code == 200, listing.text
        body = listing.json()
        assert body["total"] == 2
        assert {entry["request_id"] for entry in body["data"]} == {
            "req_app_huge",
            "req_app_null",
        }
        report = api.get("/spend", params={"key": "key_1"}).json()
        assert report["totals"]["requests"] == 4
        with httpx.Client(base_url=gateway.url) as client:
            assert client.get("/health/ready").status_code == 200
        shown = subprocess.run(
            [TOLLWAY, "spend", "--url", gateway.url, "--master-key", MASTER_KEY, "quarantine"],
            capture_output=True,
            text=True,
            env=clean_env(NO_COLOR="1", COLUMNS="200"),
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert "req_app_huge" in shown.stdout and "req_app_null" in shown.stdout


def test_hostile_calls_cannot_stop_recording_on_postgres(
    metered_server: MeteredUpstream, tmp_path: Path
) -> None:
    """The reported attack, end to end on Postgres: names a column cannot hold and an
    upstream reporting 10**19 tokens. Other tenants' calls keep being recorded, and the
    gateway restarts cleanly on the same journal and database."""
    with shared_postgres_database() as url:
        settings = Settings(
            master_key=MASTER_KEY,
            data_dir=tmp_path / "data",
            database_url=url,
            providers=providers(metered_server),
            models=MODELS,
            retry={"attempts": 0},
            log={"level": "warning", "access": False},
        )
        for _ in range(2):  # the second start replays and reuses what the first left
            with running_gateway(settings) as gateway, admin_client(gateway.url) as api:
                attacker, victim = new_key(api), new_key(api)
                with httpx.Client(base_url=gateway.url, timeout=15) as http:
                    for model in ("m" * 201, "gpt\x00-test"):
                        bad = http.post(
                            "/v1/chat/completions",
                            json={"model": model, "messages": MESSAGES},
                            headers={"authorization": f"Bearer {attacker['key']}"},
                        )
                        assert bad.status_code == 400, bad.text
                    metered_server.script(
                        Metered(raw_usage={"prompt_tokens": 10**19, "completion_tokens": -1})
                    )
                    body = {"model": HOUSE_GPT, "messages": MESSAGES, "max_tokens": 5}
                    absurd = http.post(
                        "/v1/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {attacker['key']}"},
                    )
                    assert absurd.status_code == 200, absurd.text
                    for _ in range(3):
                        metered_server.script(Metered())
                        ok = http.post(
                            "/v1/chat/completions",
                            json=body,
                            headers={"authorization": f"Bearer {victim['key']}"},
                        )
                        assert ok.status_code == 200, ok.text
                assert wait_for_requests(api, 3, key=victim["id"])["totals"]["requests"] == 3
                flagged = wait_for_requests(api, 3, key=attacker["id"])["totals"]
                assert flagged["requests"] == 3  # two 400s and the estimated call
                assert flagged["estimated_requests"] == 1
                assert api.get("/spend/quarantine").json()["total"] == 0
