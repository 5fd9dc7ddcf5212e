"""What a batch of spend records changes besides its rows, in the same transaction.

Only rows stored for the first time count (a replayed journal may bring a record the
database already has): each adds to its hour's and day's rollup cells (its metadata set
kept once, ``spend_metadata.py``; a record older than the running totals moves their
horizon back, ``running.py``), and to its key's ``request_count`` when the call was
not counted at admission (keys with ``max_requests`` count there, exactly; every other
key counts here, off the request path). Captured bodies (``capture.py``) arrive as
records of their own and go to ``request_bodies``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.bounds import INT64_MAX
from tollway.store import rollups, running, spend_metadata
from tollway.store.tables import RequestBody, VirtualKey

BODIES = "bodies"  # the journal record kind of a call's captured bodies
# Bodies are cut at capture; a journal edited by hand is held to the same bound.
MAX_BODY_CHARS = 1024 * 1024
BODY_COLUMNS = (
    "request_id",
    "ts",
    "request_body",
    "response_body",
    "request_bytes",
    "response_bytes",
)
_SQLITE_BODY = (
    f"INSERT INTO request_bodies ({', '.join(BODY_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' * len(BODY_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)
_SQLITE_COUNT = "UPDATE keys SET request_count = request_count + ? WHERE id = ?"
_CHUNK = 500  # request ids per lookup (SQLite allows 32,766 parameters)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).replace("\x00", "")[:MAX_BODY_CHARS]


def _size(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value <= INT64_MAX else 0


def body_row(record: dict[str, Any]) -> dict[str, Any]:
    """A bodies record as a ``request_bodies`` row; ValueError when it has no id or time."""
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("a bodies record without a request id")
    return {
        "request_id": request_id[:40],
        "ts": datetime.fromisoformat(str(record.get("ts"))),
        "request_body": _text(record.get("request_body")),
        "response_body": _text(record.get("response_body")),
        "request_bytes": _size(record.get("request_bytes")),
        "response_bytes": _size(record.get("response_bytes")),
    }


def first_of_each(rows: Iterable[dict[str, Any]], stored: set[str]) -> list[dict[str, Any]]:
    """The rows whose request id is not in ``stored``, each id once."""
    seen = set(stored)
    fresh = []
    for row in rows:
        if row["request_id"] not in seen:
            seen.add(row["request_id"])
            fresh.append(row)
    return fresh


def stored_ids_sqlite(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> set[str]:
    """The request ids among ``rows`` the spend table already has (inside the write
    transaction, so no other writer can add one meanwhile)."""
    ids = [row["request_id"] for row in rows]
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT request_id FROM spend WHERE request_id IN ({marks})"  # noqa: S608
        found.update(row[0] for row in conn.execute(query, chunk))
    return found


def request_counts(rows: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """Requests to add per key, in key order (one lock order for every writer)."""
    counts = Counter(
        row["key_id"] for row in rows if row.get("count_request") and row.get("key_id")
    )
    return sorted(counts.items())


def apply_sqlite(
    conn: sqlite3.Connection, fresh: list[dict[str, Any]], bodies: list[dict[str, Any]]
) -> None:
    """Rollups, request counts and bodies of a batch, on its stdlib connection."""
    metadata_ids = spend_metadata.intern_sqlite(conn, fresh, spend_metadata.digests(fresh))
    rollups.add_sqlite(conn, fresh, metadata_ids)
    late = running.late_bucket(fresh, datetime.now(UTC))
    if late is not None:
        running.lower_horizon_sqlite(conn, late)
    conn.executemany(_SQLITE_COUNT, [(n, key_id) for key_id, n in request_counts(fresh)])
    if bodies:
        conn.executemany(_SQLITE_BODY, [_sqlite_body(body) for body in bodies])


def _sqlite_body(row: dict[str, Any]) -> tuple[Any, ...]:
    ts: datetime = row["ts"].astimezone(UTC)
    return tuple(
        ts.strftime("%Y-%m-%d %H:%M:%S.%f") if column == "ts" else row[column]
        for column in BODY_COLUMNS
    )


async def apply(
    session: AsyncSession, fresh: list[dict[str, Any]], bodies: list[dict[str, Any]]
) -> None:
    """Rollups, request counts and bodies of a batch, in the session's transaction."""
    metadata_ids = await spend_metadata.intern(session, fresh, spend_metadata.digests(fresh))
    await rollups.add(session, fresh, metadata_ids)
    late = running.late_bucket(fresh, datetime.now(UTC))
    if late is not None:
        await running.lower_horizon(session, late)
    for key_id, n in request_counts(fresh):
        await session.execute(
            update(VirtualKey)
            .where(VirtualKey.id == key_id)
            .values(request_count=VirtualKey.request_count + n)
        )
    if bodies:
        table = cast(Table, RequestBody.__table__)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["request_id"])
        await session.execute(statement, bodies)
