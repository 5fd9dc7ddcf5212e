"""The metadata of the calls in the spend rollups, kept once per distinct set.

A call carries its key's metadata (``{"org": "acme", "user": "u-42"}``). The rollup
cells keep a number for it (``metadata_id``; 0: none) that points at a row of
``spend_metadata`` holding the set once, so a report grouped by ``metadata.<field>``
sums cells per set and then reads the field of each set: a month of a million calls is
a few thousand cells, not a million JSON documents.

A set is found again by a digest of its canonical JSON, so every batch of the spend
writer adds only the sets it has not seen (``intern``, ``intern_sqlite``). Erasing a
data subject removes the subject's fields from every set that names the subject and
clears its digest (``forget``): the totals of the cells stay, their metadata no longer
names the subject, and later calls start a set of their own.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.keys import metadata_matches
from tollway.store.tables import SpendMetadata

NONE = 0  # the metadata id of a call without metadata
_CHUNK = 5000  # ids or digests per lookup (SQLite allows 32,766 parameters)


def canonical(metadata: Any) -> bytes | None:
    """The set as canonical JSON (sorted keys); None when there is nothing to keep."""
    if not isinstance(metadata, dict) or not metadata:
        return None
    return orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)


def digest(text: bytes) -> str:
    """What a set is found again by."""
    return hashlib.sha256(text).hexdigest()


def digests(rows: Iterable[Mapping[str, Any]]) -> list[str | None]:
    """The digest of each row's metadata (None: the row has none)."""
    found: list[str | None] = []
    for row in rows:
        text = canonical(row.get("metadata"))
        found.append(digest(text) if text is not None else None)
    return found


def _sets(rows: Sequence[Mapping[str, Any]], keys: Sequence[str | None]) -> list[tuple[str, str]]:
    """(digest, JSON text) of each distinct set, in digest order (one lock order)."""
    sets: dict[str, str] = {}
    for row, key in zip(rows, keys, strict=True):
        if key is not None and key not in sets:
            sets[key] = (canonical(row["metadata"]) or b"{}").decode()
    return sorted(sets.items())


def intern_sqlite(
    conn: sqlite3.Connection, rows: Sequence[Mapping[str, Any]], keys: Sequence[str | None]
) -> list[int]:
    """The metadata id of each row, adding the sets not stored yet (on the writer's
    stdlib connection, in its transaction)."""
    sets = _sets(rows, keys)
    if not sets:
        return [NONE] * len(rows)
    conn.executemany(
        "INSERT INTO spend_metadata (digest, metadata) VALUES (?, ?) "
        "ON CONFLICT (digest) DO NOTHING",
        sets,
    )
    ids: dict[str, int] = {}
    names = [name for name, _ in sets]
    for start in range(0, len(names), _CHUNK):
        chunk = names[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT digest, id FROM spend_metadata WHERE digest IN ({marks})"  # noqa: S608
        ids.update(conn.execute(query, chunk).fetchall())
    return [ids[key] if key is not None else NONE for key in keys]


async def intern(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], keys: Sequence[str | None]
) -> list[int]:
    """The metadata id of each row, adding the sets not stored yet (in the session's
    transaction)."""
    sets = _sets(rows, keys)
    if not sets:
        return [NONE] * len(rows)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = cast(Table, SpendMetadata.__table__)
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["digest"])
    await session.execute(
        statement, [{"digest": name, "metadata": orjson.loads(text)} for name, text in sets]
    )
    ids: dict[str, int] = {}
    names = [name for name, _ in sets]
    for start in range(0, len(names), _CHUNK):
        chunk = names[start : start + _CHUNK]
        found = await session.execute(
            select(SpendMetadata.digest, SpendMetadata.id).where(SpendMetadata.digest.in_(chunk))
        )
        ids.update((str(name), int(number)) for name, number in found.all())
    return [ids[key] if key is not None else NONE for key in keys]


def field(column: Any, name: str, dialect: str) -> Any:
    """A field of a JSON column as text, as Postgres' ``->>`` gives it (strings as they
    are, booleans ``true``/``false``, null or missing as NULL) on every database; SQLite
    gives numbers as numbers, which ``field_value`` writes as JSON."""
    if dialect == "postgresql":
        return column[name].as_string()
    path = "$." + name  # names are identifiers (the API's group_by pattern)
    kind = func.json_type(column, path)
    return case((kind.in_(("true", "false")), kind), else_=func.json_extract(column, path))


def field_sql(column: str, dialect: str) -> str:
    """``field`` as SQL text, with the field's name in :field (Postgres) or its JSON
    path in :path (SQLite)."""
    if dialect == "postgresql":
        return f"({column} ->> CAST(:field AS TEXT))"
    return (
        f"(CASE WHEN json_type({column}, :path) IN ('true', 'false') "
        f"THEN json_type({column}, :path) ELSE json_extract({column}, :path) END)"
    )


def field_params(name: str) -> dict[str, str]:
    """The parameters of ``field_sql``."""
    return {"field": name, "path": "$." + name}


def field_value(value: Any) -> str | None:
    """A field as ``field`` read it, as text (numbers as JSON)."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _parsed(value: Any) -> Any:
    """A JSON column's value as Python (drivers give text or parsed JSON)."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


async def forget(session: AsyncSession, subject: dict[str, str]) -> int:
    """Remove the subject's fields from every set that names the subject, and clear its
    digest; returns how many sets changed."""
    dialect = session.get_bind().dialect.name
    conditions = [
        metadata_matches(SpendMetadata.metadata_, name, value, dialect)
        for name, value in subject.items()
    ]
    rows = await session.execute(
        select(SpendMetadata.id, SpendMetadata.metadata_).where(*conditions)
    )
    changed = 0
    for number, metadata in rows.all():
        kept = {
            name: value for name, value in (_parsed(metadata) or {}).items() if name not in subject
        }
        await session.execute(
            update(SpendMetadata)
            .where(SpendMetadata.id == number)
            .values(digest=None, metadata_=kept)
        )
        changed += 1
    return changed
