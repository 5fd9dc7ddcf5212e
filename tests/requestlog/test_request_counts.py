"""A key's ``request_count`` is true for every key: counted with the call's spend record
(off the request path) when the key has no ``max_requests``, at admission when it has
one; never twice, also when a journal is replayed; on SQLite and Postgres."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from requestlog_support import chat, message, new_key, ok, scalar, spend_record, write
from sqlalchemy import text

from harness import GatewayServer
from tollway.metering.records import Recorder
from tollway.store.db import Database


def count(api: httpx.Client, key_id: str) -> int:
    """The key's request_count as the API shows it (a read flushes pending records)."""
    value: int = ok(api.get(f"/keys/{key_id}"))["request_count"]
    return value


def test_every_key_counts_its_requests(rlgw: GatewayServer, api: httpx.Client) -> None:
    key = new_key(api)
    assert count(api, key["id"]) == 0
    for _ in range(3):
        assert chat(rlgw.url, key["key"]).status_code == 200
    assert message(rlgw.url, key["key"]).status_code == 200
    assert count(api, key["id"]) == 4
    # Requests refused before authorization (an unknown model) are not the key's to count,
    # as with max_requests.
    assert chat(rlgw.url, key["key"], model="no-such-model").status_code == 404
    assert count(api, key["id"]) == 4


def test_counts_are_exact_under_concurrency(rlgw: GatewayServer, api: httpx.Client) -> None:
    free, limited = new_key(api), new_key(api, max_requests=1000)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(lambda n: chat(rlgw.url, (free, limited)[n % 2]["key"]).status_code, range(40))
        )
    assert statuses == [200] * 40
    assert count(api, free["id"]) == 20
    assert count(api, limited["id"]) == 20  # counted once: at admission, not again


def test_max_requests_stays_exact(rlgw: GatewayServer, api: httpx.Client) -> None:
    key = new_key(api, max_requests=2)
    assert [chat(rlgw.url, key["key"]).status_code for _ in range(3)] == [200, 200, 403]
    assert count(api, key["id"]) == 2
    # Lifting the limit: later calls are counted with their records, on top.
    ok(api.patch(f"/keys/{key['id']}", json={"max_requests": None}))
    assert chat(rlgw.url, key["key"]).status_code == 200
    assert count(api, key["id"]) == 3


async def test_a_replayed_record_counts_once(database_url: str, tmp_path: Path) -> None:
    """A record already stored (its segment survived a crash after the commit) is not
    counted again when the journal is replayed."""
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO keys (id, name, key_hash, key_prefix, project_id, active, "
                    "request_count, metadata, expiry_audited, created_by, created_at, updated_at) "
                    "VALUES ('key_r', 'r', 'h', 'sk-tw-r', 'proj_default', true, 0, '{}', false, "
                    "'master', :now, :now)"
                ),
                {"now": datetime.now(UTC)},
            )
        record = spend_record("req_once", datetime.now(UTC), key_id="key_r", count_request=True)
        await write(db, [record])
        await write(db, [record, record])
        assert await scalar(db, "SELECT request_count FROM keys WHERE id = 'key_r'") == 1

        # The record replay makes of a call cut by a crash (from its intent) counts like
        # a finished call's, once.
        recorder = Recorder(db, tmp_path / "data")
        intent = {**record, "request_id": "req_crashed", "started_at": 1.0}
        crashed = recorder._crash_record(intent)
        assert crashed["count_request"] is True
        await recorder._commit([crashed, crashed])
        await recorder._commit([crashed])
        await recorder.aclose()
        assert await scalar(db, "SELECT request_count FROM keys WHERE id = 'key_r'") == 2
    finally:
        await db.aclose()
