"""``SwitchBoard`` in-process on a real SQLite database: what each check answers, when it
reloads, and that an unreadable database never flips a switch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tollway.config import ModelConfig
from tollway.store import switches as switch_store
from tollway.store.db import Database
from tollway.store.epoch import UNREAD
from tollway.store.tables import Switch
from tollway.switches import SwitchBoard, deployment_labels


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database."""
    database = Database(f"sqlite:///{tmp_path / 'tollway.db'}")
    await database.migrate()
    yield database
    await database.aclose()


async def switch(db: Database, wanted: dict[str, bool]) -> int:
    """Set switches as the API does; returns the new switches epoch."""
    async with db.transaction() as session:
        await switch_store.apply(session, wanted, "test")
    return (await db.epoch.current()).switches


async def test_checks_follow_the_rows(db: Database) -> None:
    board = SwitchBoard(db)
    assert board.proxy_on() and board.provider_on("oa") and board.deployment_on("oa", "m")
    await board.refresh_if_changed((await db.epoch.current()).switches)
    assert board.epoch == 0 and board.off() == []

    epoch = await switch(db, {"proxy": False, "provider:oa": False})
    assert board.proxy_on()  # nothing changes until the new epoch is seen
    await board.refresh_if_changed(epoch)
    assert not board.proxy_on()
    assert not board.provider_on("oa") and board.provider_on("an")
    assert not board.route_on("oa", "anything") and board.route_on("an", "anything")
    state = board.proxy_state()
    assert state is not None and state.changed_by == "test" and state.enabled is False

    epoch = await switch(
        db,
        {
            "proxy": True,
            "provider:oa": True,
            "deployment:an/claude_x": False,
            "deployment:an/claude-*": False,
        },
    )
    await board.refresh_if_changed(epoch)
    assert board.proxy_on() and board.provider_on("oa")
    assert not board.deployment_on("an", "claude_x")
    assert not board.deployment_on("an", "claude-3-haiku")  # under the glob
    assert board.deployment_on("oa", "claude-3-haiku")  # another provider
    assert board.deployment_on("an", "gpt-x")
    assert board.deployment_state("an", "claude_x") is not None
    assert sorted(s.name for s in board.off()) == [
        "deployment:an/claude-*",
        "deployment:an/claude_x",
    ]


async def test_reloads_only_when_the_epoch_moves(db: Database) -> None:
    board = SwitchBoard(db)
    await board.refresh_if_changed(UNREAD.switches)  # never read: nothing to load
    assert board.epoch == -1
    epoch = await switch(db, {"proxy": False})
    await board.refresh_if_changed(epoch)
    assert board.epoch == epoch and not board.proxy_on()
    # The rows change behind its back without an epoch bump: not seen, by design.
    async with db.transaction() as session:
        row = await session.get(Switch, "proxy")
        assert row is not None
        row.enabled = True
    await board.refresh_if_changed(epoch)
    assert not board.proxy_on()
    # A counter that moved back (a restored database) is a change too.
    await board.refresh_if_changed(epoch - 1)
    assert board.proxy_on() and board.epoch == epoch - 1


async def test_an_unreadable_table_keeps_the_last_state(db: Database) -> None:
    board = SwitchBoard(db)
    epoch = await switch(db, {"provider:oa": False})
    await board.refresh_if_changed(epoch)
    async with db.transaction() as session:
        await session.execute(text("DROP TABLE switches"))
    await board.refresh_if_changed(epoch + 1)  # the load fails: logged, state kept
    assert not board.provider_on("oa") and board.proxy_on()
    assert board.epoch == epoch  # so the next request tries again


def test_deployment_labels_follow_the_config() -> None:
    models = [
        ModelConfig(name="gpt", provider="oa", model="gpt-upstream"),
        ModelConfig(
            name="fast",
            deployments=[{"provider": "oa", "model": "gpt-upstream"}, {"provider": "gq"}],
        ),
        ModelConfig(name="claude-*", provider="an"),
    ]
    assert deployment_labels(models) == ["oa/gpt-upstream", "gq/fast", "an/claude-*"]
