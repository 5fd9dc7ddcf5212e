"""Reading the config again while serving: on SIGHUP, and when the file changes.

    SIGHUP, or the file's content changed (checked every ``config_watch_seconds``)
      -> load and validate the file and environment as at startup (``load_settings``)
      -> the gateway builds a new generation from the reloadable sections (``live.py``)
      -> new calls start on it; calls in flight finish on the one they started on

A config that does not load or build is refused with an error log line, and the running
one is kept. Only ``RELOADED`` sections take effect; a change to any other setting
(database, Redis, host, port, workers, TLS files, ...) is logged as waiting for a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tollway.settings import ConfigError, Settings, load_settings

log = logging.getLogger("tollway.reload")
# The settings a reload applies: what the proxy path is built from (live.Generation).
RELOADED = ("providers", "models", "model_groups", "guards", "retry", "circuit", "timeouts")

# Builds and swaps in what the settings describe; returns the settings left for a restart.
Apply = Callable[[Settings], list[str]]


class EarlyHangups:
    """SIGHUPs that arrive while the process starts, before the reloader listens (a
    worker still building its app, say). Their default action would end the process,
    and ignoring them would lose the reload asked for: they are noted, and answered
    with one reload once the reloader listens."""

    def __init__(self) -> None:
        self._noted = threading.Event()

    def install(self) -> None:
        """Note SIGHUP from now on, until the reloader takes it over."""
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._note)

    def take(self) -> bool:
        """Whether a SIGHUP came since the last call."""
        noted = self._noted.is_set()
        self._noted.clear()
        return noted

    def _note(self, signum: int, frame: object) -> None:
        self._noted.set()


@dataclass(frozen=True)
class ConfigSource:
    """Where the running settings came from, to read them again the same way; and the
    SIGHUPs that came before anything listened for them."""

    path: Path | None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    early: EarlyHangups = field(default_factory=EarlyHangups, compare=False, repr=False)

    def load(self) -> Settings:
        """The settings as they read now; ConfigError naming the field when invalid."""
        return load_settings(self.path, self.overrides)

    def fingerprint(self) -> str | None:
        """A digest of the file's bytes (None: no file, or unreadable right now)."""
        if self.path is None:
            return None
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None


def reloaded_settings(running: Settings, loaded: Settings) -> tuple[Settings, list[str]]:
    """The settings to run with: ``loaded``'s reloadable sections over ``running``; and
    the names of the other settings ``loaded`` changes (they wait for a restart)."""
    pending = [
        name
        for name in type(running).model_fields
        if name not in RELOADED and getattr(running, name) != getattr(loaded, name)
    ]
    update = {name: getattr(loaded, name) for name in RELOADED}
    return running.model_copy(update=update), pending


class Reloader:
    """Watches for SIGHUP and file changes and hands each new config to ``apply``, one
    reload at a time; a refused config is logged and the running one kept."""

    def __init__(self, source: ConfigSource, apply: Apply, interval: float) -> None:
        self._source = source
        self._apply = apply
        self._interval = interval
        self._seen = source.fingerprint()
        self._wanted = asyncio.Event()
        self._triggers: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._signal = False

    def start(self) -> None:
        """Listen for SIGHUP (when serving from the main thread) and watch the file."""
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self.request, "SIGHUP")
            self._signal = True
            if self._source.early.take():
                self.request("SIGHUP")
        self._tasks.append(loop.create_task(self._reloads()))
        if self._interval > 0 and self._source.path is not None:
            self._tasks.append(loop.create_task(self._watch()))

    def request(self, trigger: str) -> None:
        """Ask for a reload (coalesced with one already waiting)."""
        self._triggers.append(trigger)
        self._wanted.set()

    async def aclose(self) -> None:
        """Stop listening and watching."""
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            # The default action of SIGHUP ends the process: a late one is ignored.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            self._signal = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            seen = self._source.fingerprint()
            if seen is not None and seen != self._seen:
                self.request("file")

    async def _reloads(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            trigger = "+".join(dict.fromkeys(self._triggers))
            self._triggers.clear()
            await self._reload(trigger)

    async def _reload(self, trigger: str) -> None:
        # What is read now is what this attempt decides on: the watch fires again only
        # when the file changes after it.
        self._seen = self._source.fingerprint()
        where = {"trigger": trigger, "path": str(self._source.path), "pid": os.getpid()}
        refused = "config reload refused; the running config is kept"
        try:
            loaded = await asyncio.to_thread(self._source.load)
            pending = self._apply(loaded)
        except ConfigError as exc:
            log.error(refused, extra={"fields": {**where, "reason": str(exc)}})
            return
        except Exception:  # the edge: a config that cannot be built never stops the gateway
            log.exception(refused, extra={"fields": where})
            return
        models, providers = len(loaded.models), len(loaded.providers)
        log.info(
            "config reloaded",
            extra={"fields": {**where, "models": models, "providers": providers}},
        )
        if pending:
            log.warning(
                "config changes that take effect only after a restart",
                extra={"fields": {**where, "settings": pending}},
            )
