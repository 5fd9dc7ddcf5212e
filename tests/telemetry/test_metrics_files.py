"""The run directory of worker metric files: made fresh, stale ones removed, exited
workers' live gauges dropped, removed when the run ends."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from tollway.telemetry.metrics_files import (
    ENVIRONMENT,
    LOCK,
    Reaper,
    alive,
    remove_stale,
    shared_values,
)


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_gets_a_fresh_locked_directory_named_in_the_environment(tmp_path: Path) -> None:
    with shared_values(tmp_path) as run:
        assert run.parent == (tmp_path / "metrics").resolve()
        assert os.environ[ENVIRONMENT] == str(run)
        assert oct(run.stat().st_mode & 0o777) == "0o700"
        fd = os.open(run / LOCK, os.O_RDWR)
        try:
            # Held by the run: another process finding it would leave it alone.
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
        finally:
            os.close(fd)
        assert held
    assert ENVIRONMENT not in os.environ
    assert not run.exists()


def test_stale_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    root = tmp_path / "metrics"
    dead = root / "run-dead"
    dead.mkdir(parents=True)
    (dead / LOCK).touch()
    (dead / "counter_12345.db").write_bytes(b"x")
    other = root / "not-a-run"
    other.mkdir()
    with shared_values(tmp_path) as live:
        assert not dead.exists()
        assert other.exists()
        # A second gateway on the same data dir leaves the first one's run alone.
        assert remove_stale(root) == []
        assert live.exists()


def test_exited_workers_lose_their_live_gauges_and_keep_their_counts(tmp_path: Path) -> None:
    gone, here = _exited_pid(), os.getpid()
    assert not alive(gone) and alive(here)
    for pid in (gone, here):
        for name in ("gauge_livesum", "gauge_livemax", "counter", "histogram"):
            (tmp_path / f"{name}_{pid}.db").write_bytes(b"")
    reaper = Reaper(tmp_path)
    assert reaper.reap() == [gone]
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted(
        [f"counter_{gone}.db", f"histogram_{gone}.db"]
        + [
            f"{name}_{here}.db"
            for name in ("gauge_livesum", "gauge_livemax", "counter", "histogram")
        ]
    )
    assert reaper.reap() == []
