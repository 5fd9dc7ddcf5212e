"""The event export, wired: producers call ``Events``; the outbox keeps; dispatchers
deliver.

``Events`` is a telemetry observer (``call_finished`` -> ``request.completed``,
``circuit_changed`` -> ``circuit.opened`` / ``circuit.closed``) and has one method per
other producer (the admin routes, the quarantine). Each builds the event, appends it to
the outbox (microseconds, no system call, no await) and wakes the dispatchers. With no
sink configured, every producer returns at once and nothing is written.

Background tasks, started with the app: one dispatcher per sink, the budget threshold
checker, the expired-key scan, and every ``ADOPT_SECONDS`` a look for the outboxes of
stopped processes (also done at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tollway.events.config import EventsConfig
from tollway.events.dead_letters import DeadLetters
from tollway.events.dispatch import Dispatcher
from tollway.events.envelope import (
    CIRCUIT_CLOSED,
    CIRCUIT_OPENED,
    KEY_CREATED,
    KEY_REVOKED,
    RECORD_QUARANTINED,
    REQUEST_COMPLETED,
    encode,
    event_id,
    random_id,
)
from tollway.events.expiry import KeyExpiry
from tollway.events.outbox import Outbox
from tollway.events.thresholds import BudgetThresholds
from tollway.metering.records import Recorder
from tollway.store.db import Database
from tollway.telemetry.observer import Observer
from tollway.telemetry.sinks import Sink

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.settings import Settings

log = logging.getLogger("tollway.events")
ADOPT_SECONDS = 30.0
SinkClass = Callable[[str], type[Sink]]


class Events(Observer):
    """Produces events into the outbox and runs their delivery."""

    def __init__(
        self,
        config: EventsConfig,
        sinks: list[Sink],
        db: Database,
        recorder: Recorder,
        data_dir: Path,
    ) -> None:
        self.config = config
        self.sinks = sinks
        self.dead_letters = DeadLetters(data_dir)
        self.outbox: Outbox | None = None
        self.dispatchers: list[Dispatcher] = []
        if sinks:
            names = [sink.name for sink in sinks]
            self.outbox = Outbox(data_dir, recorder.instance, names, config.segment_bytes)
            self.dispatchers = [Dispatcher(s, self.outbox, self.dead_letters) for s in sinks]
        self.thresholds = BudgetThresholds(
            db, recorder.flush, config.budget_thresholds, self.emit, data_dir
        )
        self.expiry = KeyExpiry(db, data_dir, config.key_expiry_scan_seconds, self.emit)
        self._tasks: list[asyncio.Task[None]] = []
        self._delivering: list[asyncio.Task[None]] = []
        self._upkeep_task: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def from_settings(
        cls, settings: Settings, sink_class: SinkClass, db: Database, recorder: Recorder
    ) -> Events:
        """The sinks the ``events:`` section configures, built through the plugins."""
        config = settings.events
        built: list[tuple[str, dict[str, Any]]] = []
        if config.file is not None:
            built.append(("file", config.file.options()))
        built += [("webhook", hook.options()) for hook in config.webhooks]
        if config.redis_stream is not None:
            stream = config.redis_stream.options()
            stream["stream"] = settings.redis_prefix + stream["stream"]
            built.append(("redis_stream", {**stream, "url": settings.redis_url}))
        built += [(sink.type, sink.options()) for sink in config.sinks]
        sinks = []
        for kind, options in built:
            sink = sink_class(kind)(options)
            sink.plugin = kind
            sinks.append(sink)
        return cls(config, sinks, db, recorder, settings.data_dir)

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere."""
        return self.outbox is not None

    # -- producing ----------------------------------------------------------------------

    def emit(self, event_type: str, data: dict[str, Any], id_: str | None = None) -> None:
        """Keep one event for every sink (durable when this returns); never raises."""
        outbox = self.outbox
        if outbox is None:
            return
        try:
            if outbox.closed:
                raise RuntimeError("the outbox is closed")
            outbox.append(encode(event_type, data, id_ or random_id()) + b"\n")
        except Exception:  # the edge: an event must never fail what produced it
            log.exception("emitting an event failed", extra={"fields": {"type": event_type}})
            return
        for dispatcher in self.dispatchers:
            dispatcher.wake()

    def call_finished(self, record: CallRecord) -> None:
        """``request.completed`` with the call's spend record; its budgets are checked."""
        spend = record.outcome.record
        if spend is None or self.outbox is None:
            return
        self.emit(REQUEST_COMPLETED, spend, event_id(REQUEST_COMPLETED, record.request_id))
        key = record.principal.key if record.principal is not None else None
        if key is not None and record.outcome.cost:
            self.thresholds.observe(key, record.outcome.cost)

    def circuit_changed(self, deployment: str, opened: bool) -> None:
        """``circuit.opened`` / ``circuit.closed`` (this process's breaker: a random id)."""
        kind = CIRCUIT_OPENED if opened else CIRCUIT_CLOSED
        self.emit(kind, {"deployment": deployment, "state": "open" if opened else "closed"})

    def key_created(self, key: dict[str, Any], actor: str) -> None:
        """``key.created`` with the key's public fields (never its secret)."""
        self.emit(KEY_CREATED, {**key, "actor": actor}, event_id(KEY_CREATED, key["id"]))

    def key_revoked(
        self, key_id: str, name: str, project_id: str, actor: str, via: str = "key"
    ) -> None:
        """``key.revoked``: by its own route (``via="key"``) or its project's."""
        data = {
            "key_id": key_id,
            "name": name,
            "project_id": project_id,
            "actor": actor,
            "via": via,
        }
        self.emit(KEY_REVOKED, data, event_id(KEY_REVOKED, key_id))

    def quarantined(self, record: dict[str, Any], reason: str) -> None:
        """``record.quarantined``: the database refused a spend record."""
        subject = (
            record.get("request_id")
            or orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str).decode()
        )
        data = {"request_id": record.get("request_id"), "reason": reason, "record": record}
        self.emit(RECORD_QUARANTINED, data, event_id(RECORD_QUARANTINED, str(subject), reason))

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt stopped processes' outboxes; start delivery and the producers' tasks."""
        if self.outbox is None:
            return
        self.outbox.adopt()
        await self.outbox.own.upkeep()  # the first segment, ready before the first event
        for sink in self.sinks:
            await sink.start()
        loop = asyncio.get_running_loop()
        self._upkeep_task = loop.create_task(self._upkeep(), name="tollway-events-upkeep")
        self._delivering = [
            loop.create_task(d.run(), name=f"tollway-events-{d.sink.name}")
            for d in self.dispatchers
        ]
        self._tasks = [
            loop.create_task(self.thresholds.run(), name="tollway-events-budgets"),
            loop.create_task(self.expiry.run(), name="tollway-events-expiry"),
            loop.create_task(self._adopt(), name="tollway-events-adopt"),
        ]

    async def _upkeep(self) -> None:
        """Segments made and closed off the request path, until the outbox closes."""
        assert self.outbox is not None
        own = self.outbox.own
        while True:
            await own.upkeep_due.wait()
            own.upkeep_due.clear()
            if self._stopping:
                return  # what is retired is closed with the outbox
            try:
                await own.upkeep()
            except OSError:
                log.warning("preparing the next outbox segment failed", exc_info=True)

    async def _adopt(self) -> None:
        assert self.outbox is not None
        while True:
            await asyncio.sleep(ADOPT_SECONDS)
            try:
                if self.outbox.adopt():
                    for dispatcher in self.dispatchers:
                        dispatcher.wake()
            except OSError:
                log.warning("looking for stopped processes' events failed", exc_info=True)

    async def aclose(self) -> None:
        """Check due budgets once more, give the sinks ``drain_seconds`` to deliver what
        is pending, then stop; what is left stays in the outbox for the next start."""
        if self.outbox is None:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The spend records are committed by now (the recorder closes first).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.thresholds.check(flush=False), self.config.drain_seconds)
        started = time.monotonic()
        for dispatcher in self.dispatchers:
            dispatcher.drain()
        if self._delivering:
            _, late = await asyncio.wait(self._delivering, timeout=self.config.drain_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._delivering, return_exceptions=True)
            if late:
                log.warning(
                    "events left undelivered at shutdown; the next start delivers them",
                    extra={"fields": {"waited_seconds": round(time.monotonic() - started, 3)}},
                )
        for sink in self.sinks:
            try:
                await sink.aclose()
            except Exception:  # the edge: one sink failing to close must not stop the rest
                log.exception("closing an event sink failed", extra={"fields": {"sink": sink.name}})
        if self._upkeep_task is not None:  # let a segment being made or closed finish
            self._stopping = True
            self.outbox.own.upkeep_due.set()
            await asyncio.gather(self._upkeep_task, return_exceptions=True)
        self.outbox.close()
