"""The epoch bell: processes on one SQLite file hear of each other's key and switch
changes through a memory-mapped file, and read the epochs themselves only when it rang
(or a second passed). Two ``Database`` handles on one file stand for two processes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tollway.store.db import Database
from tollway.store.epoch import (
    RECHECK_SECONDS,
    SWITCHES_EPOCH,
    EpochBell,
    SqliteEpochReader,
    bell_path,
    bump,
)


async def migrated(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    return db


def advance_behind_the_bell(path: Path) -> None:
    """What a process of an older release does: commit an epoch change, ring nothing."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE epochs SET value = value + 1 WHERE name = 'keys'")


async def test_a_committed_change_is_heard_by_the_other_process_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tollway.db"
    writer, reader = await migrated(path), await migrated(path)
    try:
        before = await reader.epoch.current()
        assert await reader.epoch.current() == before  # the bell is silent: no read
        async with writer.transaction() as session:
            await bump(session)
            await bump(session, SWITCHES_EPOCH)
        after = await reader.epoch.current()
        assert (after.keys, after.switches) == (before.keys + 1, before.switches + 1)
        assert bell_path(path).stat().st_mode & 0o777 == 0o600
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_a_rolled_back_change_does_not_ring(tmp_path: Path) -> None:
    path = tmp_path / "tollway.db"
    db = await migrated(path)
    bell = EpochBell(bell_path(path))
    try:
        heard = bell.heard()
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await bump(session)
                raise RuntimeError("the change fails")
        assert bell.heard() == heard
        async with db.transaction() as session:
            await bump(session)
        assert bell.heard() != heard
    finally:
        bell.close()
        await db.aclose()


async def test_a_change_that_rang_nothing_is_read_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "tollway.db"
    db = await migrated(path)
    try:
        before = await db.epoch.current()
        advance_behind_the_bell(path)
        assert await db.epoch.current() == before  # not heard yet
        time.sleep(RECHECK_SECONDS)
        assert (await db.epoch.current()).keys == before.keys + 1
    finally:
        await db.aclose()


async def test_without_a_bell_every_request_reads_the_epochs(tmp_path: Path) -> None:
    path = tmp_path / "tollway.db"
    db = await migrated(path)
    nowhere = EpochBell(tmp_path / "missing" / "dir" / "bell")
    reader = SqliteEpochReader(path, nowhere)
    try:
        assert nowhere.heard() is None
        nowhere.ring()  # nothing to ring: no error either
        before = await reader.current()
        advance_behind_the_bell(path)
        assert (await reader.current()).keys == before.keys + 1
    finally:
        reader.close()
        await db.aclose()


async def test_a_change_is_never_committed_unrung(tmp_path: Path) -> None:
    """While the bell cannot be mapped (here: a directory stands in its place), a
    transaction advancing an epoch fails before its commit, rather than committing a
    change other processes would not hear of; once it can be, changes ring again."""
    path = tmp_path / "tollway.db"
    await (await migrated(path)).aclose()
    bell_path(path).mkdir()
    db = Database(f"sqlite:///{path}")  # a process whose bell is not mapped yet

    def committed() -> int:
        with sqlite3.connect(path) as conn:
            [(keys,)] = conn.execute("SELECT value FROM epochs WHERE name = 'keys'")
        return int(keys)

    try:
        before = committed()
        with pytest.raises(OSError):
            async with db.transaction() as session:
                await bump(session)
        assert committed() == before  # rolled back
        bell_path(path).rmdir()
        reader = await migrated(path)
        heard = await reader.epoch.current()
        async with db.transaction() as session:
            await bump(session)
        assert committed() == before + 1
        assert (await reader.epoch.current()).keys == heard.keys + 1  # rung
        await reader.aclose()
    finally:
        await db.aclose()
