"""A SIGHUP that reaches a process before its reloader listens (a worker still building
its app) is neither fatal nor lost: it is answered with one reload once the reloader
listens."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollway.reload import ConfigSource, Reloader
from tollway.settings import Settings


@pytest.fixture
def restored_sighup() -> Iterator[None]:
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


async def reloads_after_start(source: ConfigSource, patience: float) -> list[Settings]:
    applied: list[Settings] = []

    def apply(settings: Settings) -> list[str]:
        applied.append(settings)
        return []

    reloader = Reloader(source, apply, interval=0)
    reloader.start()
    try:
        deadline = asyncio.get_running_loop().time() + patience
        while not applied and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # and no second one
    finally:
        await reloader.aclose()
    return applied


def config(tmp_path: Path) -> ConfigSource:
    path = tmp_path / "tollway.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    return ConfigSource(path)


def test_a_sighup_before_the_reloader_listens_is_answered_once_it_does(
    tmp_path: Path, restored_sighup: None
) -> None:
    source = config(tmp_path)
    source.early.install()
    os.kill(os.getpid(), signal.SIGHUP)  # the process lives on
    os.kill(os.getpid(), signal.SIGHUP)  # two early ones: still one reload
    assert len(asyncio.run(reloads_after_start(source, 30.0))) == 1


def test_without_an_early_sighup_starting_the_reloader_reloads_nothing(
    tmp_path: Path, restored_sighup: None
) -> None:
    source = config(tmp_path)
    source.early.install()
    assert asyncio.run(reloads_after_start(source, 0.2)) == []
