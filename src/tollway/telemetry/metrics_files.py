"""Metric values shared by worker processes: one directory per run of ``tollway serve``.

prometheus-client decides when it is imported whether values live in memory or in
memory-mapped files, from ``PROMETHEUS_MULTIPROC_DIR``; so ``tollway serve --workers N``
names a fresh directory there before any worker starts (``shared_values``), and every
worker then writes its own files into it and reads everyone's at a scrape.

    <data_dir>/metrics/run-<random>/owner.lock    held (flock) by the serving process
                                    counter_<pid>.db, histogram_<pid>.db, gauge_*_<pid>.db

A run's directory is removed when it ends; one left by a process that died is removed
by the next start (its lock is free). While it runs, a thread of the serving process
drops the live-gauge files of workers that have exited (``mark_process_dead``), so a
dead worker's calls in flight or open breakers stop counting; its counters stay, so
totals never go back. One worker (``--workers 1``) keeps its values in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

log = logging.getLogger("tollway.telemetry")
ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"
ROOT = "metrics"
LOCK = "owner.lock"
REAP_SECONDS = 1.0
# A directory without its lock yet may be a run being created this instant.
_UNLOCKED_GRACE_SECONDS = 60.0
_PID = re.compile(r"_(\d+)\.db$")


def in_files() -> bool:
    """Whether this process's metric values live in shared files (a worker of several)."""
    return values.ValueClass is not values.MutexValue


@contextlib.contextmanager
def shared_values(data_dir: Path) -> Iterator[Path]:
    """A fresh run directory for the workers about to start, named in the environment
    they inherit; dead workers' live gauges dropped while it is used; removed after."""
    root = data_dir.resolve() / ROOT
    root.mkdir(mode=0o700, exist_ok=True)
    remove_stale(root)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    lock = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.environ[ENVIRONMENT] = str(run)
    reaper = Reaper(run)
    reaper.start()
    try:
        yield run
    finally:
        reaper.stop()
        os.environ.pop(ENVIRONMENT, None)
        shutil.rmtree(run, ignore_errors=True)
        os.close(lock)


def remove_stale(root: Path) -> list[Path]:
    """Remove the run directories of processes that are gone; returns them."""
    removed = []
    for run in root.iterdir():
        if not run.is_dir() or not run.name.startswith("run-") or _owned(run):
            continue
        shutil.rmtree(run, ignore_errors=True)
        removed.append(run)
    return removed


def _owned(run: Path) -> bool:
    try:
        fd = os.open(run / LOCK, os.O_RDWR)
    except FileNotFoundError:
        return time.time() - run.stat().st_mtime < _UNLOCKED_GRACE_SECONDS
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this call took
    return False


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Reaper:
    """Drops the live-gauge files of exited workers, every ``REAP_SECONDS``."""

    def __init__(self, run: Path) -> None:
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tollway-metrics", daemon=True)

    def start(self) -> None:
        """Begin watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (returns once the thread has ended)."""
        self._stop.set()
        self._thread.join(5)

    def reap(self) -> list[int]:
        """Drop the live gauges of every exited worker (its files go with them, so each
        is marked once); returns the ones marked now."""
        pids = set()
        for path in self._run.glob("gauge_live*.db"):
            found = _PID.search(path.name)
            if found is not None:
                pids.add(int(found.group(1)))
        marked = [pid for pid in sorted(pids) if not alive(pid)]
        for pid in marked:
            mark_process_dead(pid, str(self._run))  # type: ignore[no-untyped-call]
        return marked

    def _loop(self) -> None:
        while not self._stop.wait(REAP_SECONDS):
            try:
                self.reap()
            except OSError:
                log.warning("dropping exited workers' metrics failed", exc_info=True)
