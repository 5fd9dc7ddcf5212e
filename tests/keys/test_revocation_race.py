"""A key lookup that straddles a revocation cannot bring the revoked key back.

Request A reads the keys epoch, misses the cache and starts reading the key; the key is
revoked; request B, on the new epoch, reads it revoked. A's read, older than the
revocation, answers A (A began before it) but must not land in the new epoch's cache,
or every later request would find the revoked key usable until the next change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from keys_support import new_key, ok, unique

from served import ServedGateway
from tollway.auth.directory import KeyDirectory
from tollway.auth.secrets import ServerKeys
from tollway.errors import TollwayError
from tollway.settings import load_settings
from tollway.store.db import Database

MASTER_KEY_UNUSED = "sk-tollway-master-unused-in-this-test"


async def test_a_lookup_older_than_a_revocation_is_not_cached_after_it(
    gw: ServedGateway, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(api, name=unique("race"))
    headers = {"x-api-key": key["key"]}
    settings = load_settings(gw.config)
    db = Database(settings.database_path_url)
    directory = KeyDirectory(db, ServerKeys.from_settings(settings), MASTER_KEY_UNUSED)
    load = directory._load
    read, resume = asyncio.Event(), asyncio.Event()

    async def slow_first_read(digest: str) -> Any:
        found = await load(digest)
        if not read.is_set():  # A: holds its (pre-revocation) answer until told
            read.set()
            await resume.wait()
        return found

    monkeypatch.setattr(directory, "_load", slow_first_read)
    try:
        a = asyncio.create_task(directory.authenticate(headers, await directory.epochs()))
        await asyncio.wait_for(read.wait(), 30)
        ok(api.delete(f"/keys/{key['id']}"))
        with pytest.raises(TollwayError):  # B, after the revocation
            await directory.authenticate(headers, await directory.epochs())
        resume.set()
        assert (await a).key is not None  # A began before the revocation
        for _ in range(3):  # and every request after it finds the key revoked
            with pytest.raises(TollwayError):
                await directory.authenticate(headers, await directory.epochs())
    finally:
        await db.aclose()
