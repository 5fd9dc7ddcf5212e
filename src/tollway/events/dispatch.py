"""One sink's delivery loop: read the outbox past its cursor, send, retry, move on.

Batches go out in outbox order. What a sink fails to take is sent again after an
exponential backoff (``backoff_seconds`` doubling up to ``max_backoff_seconds``); an
event that has failed ``max_attempts`` times goes to the dead letters
(``dead_letters.py``) and delivery moves on. The sink's cursor moves past a batch only
once every event in it was delivered or dead-lettered, so a crash or a shutdown in
between sends the batch again: at least once, never lost. Attempts are counted per
process (a restart starts counting again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from tollway.events.dead_letters import DeadLetters
from tollway.events.outbox import Batch, Outbox
from tollway.telemetry.sinks import Event, Failure, Sink

log = logging.getLogger("tollway.events")
# How often an idle dispatcher looks at the outbox without being woken (adopted logs).
IDLE_SECONDS = 1.0


class Dispatcher:
    """Delivers the outbox to one sink."""

    def __init__(self, sink: Sink, outbox: Outbox, dead_letters: DeadLetters) -> None:
        self.sink = sink
        self._outbox = outbox
        self._dead_letters = dead_letters
        self._wake = asyncio.Event()
        self._draining = False
        self._failing = False
        self.delivered = 0

    def wake(self) -> None:
        """There is something new in the outbox."""
        self._wake.set()

    def drain(self) -> None:
        """Deliver what is there, then stop."""
        self._draining = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until drained (or cancelled: the undelivered stay in the outbox)."""
        name, size = self.sink.name, self.sink.delivery.batch_size
        while True:
            batch = self._outbox.read(name, size)
            if batch is None:
                if self._draining:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
                continue
            await self._deliver(batch)
            self._outbox.commit(batch)

    async def _deliver(self, batch: Batch) -> None:
        pending = [event for event in _events(batch) if self.sink.wants(event.type)]
        attempts = 0
        delivery = self.sink.delivery
        while pending:
            attempts += 1
            failures = await self._send(pending)
            self.delivered += len(pending) - len(failures)
            if not failures:
                if self._failing:
                    log.info("event sink delivering again", extra={"fields": self._fields()})
                    self._failing = False
                return
            if not self._failing:
                log.warning(
                    "event sink failed; will retry",
                    extra={"fields": {**self._fields(), "error": failures[0][1][:200]}},
                )
                self._failing = True
            if delivery.max_attempts is not None and attempts >= delivery.max_attempts:
                for event, error in failures:
                    self._dead_letters.put(self.sink.name, event, attempts, error)
                return
            pending = [event for event, _ in failures]
            delay = delivery.backoff_seconds * 2 ** (attempts - 1)
            await asyncio.sleep(min(delay, delivery.max_backoff_seconds))

    async def _send(self, events: list[Event]) -> list[Failure]:
        try:
            return await self.sink.send(events)
        except Exception as exc:  # the edge: a sink's failure is a failed delivery
            log.debug("event sink raised", extra={"fields": self._fields()}, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
            return [(event, reason) for event in events]

    def _fields(self) -> dict[str, str]:
        return {"sink": self.sink.name}


def _events(batch: Batch) -> list[Event]:
    """The batch's lines as events (a line that is not an event is logged and skipped)."""
    events = []
    for line in batch.lines:
        try:
            decoded = orjson.loads(line)
            events.append(Event(str(decoded["id"]), str(decoded["type"]), line))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("not an event in the outbox", extra={"fields": {"bytes": len(line)}})
    return events
