"""What the proxy tells telemetry as a call runs: one small interface, many listeners.

The pipeline, the forwarder, the meter and the routing layer call an ``Observer`` at
fixed points; metrics (``metrics.py``) and traces (``tracing.py``) are observers. Every
hook is synchronous and must be quick (a counter increment, a span event): none may
block or raise into the call. ``Observers`` fans out to several and swallows (and logs)
an observer's failure.

    call_started        the call is accepted for reading (request headers known)
    attempt_started     one try at one deployment begins (returns extra upstream headers:
                        trace context)
    attempt_finished    that try ended: served, or failed with an error code
    call_finished       the call's record is complete (spend journaled, status final)
    refused             budget or rate limit turned the call away (402/429)
    circuit_changed     a deployment's breaker opened or closed
    store_failed        the database or Redis failed an operation
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.routing.router import Route

log = logging.getLogger("tollway.telemetry")


class Observer:
    """Every hook does nothing; subclasses override what they need."""

    async def start(self) -> None:
        """Begin background work (exporters, dispatchers) once the event loop runs."""

    async def aclose(self) -> None:
        """Flush what is pending and stop (the gateway is shutting down)."""

    def call_started(self, record: CallRecord) -> None:
        """The call arrived (headers known, body not yet read)."""

    def attempt_started(self, record: CallRecord, route: Route) -> dict[str, str]:
        """One try at ``route`` begins; headers to add to the upstream request."""
        return {}

    def attempt_finished(
        self, record: CallRecord, route: Route, error: str | None, seconds: float
    ) -> None:
        """That try ended: ``error`` is None when it answered, else the error code."""

    def call_finished(self, record: CallRecord) -> None:
        """The call is over: status, tokens, cost and decisions are final."""

    def refused(self, record: CallRecord, reason: str) -> None:
        """Admission turned the call away: ``budget`` or ``rate_limit``."""

    def circuit_changed(self, deployment: str, opened: bool) -> None:
        """A deployment's circuit breaker opened (or closed again)."""

    def store_failed(self, store: str, operation: str) -> None:
        """``database`` or ``redis`` failed ``operation``."""


def _overrides(observer: Observer, hook: str) -> bool:
    return getattr(type(observer), hook) is not getattr(Observer, hook)


class Observers(Observer):
    """Several observers as one; one that raises is logged and the others still run.

    Each hook calls only the observers that override it (bound once, here): a hook nobody
    listens to costs one empty loop on the proxy path."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)
        hooks = {
            hook: tuple(o for o in self.observers if _overrides(o, hook))
            for hook in (
                "call_started",
                "attempt_started",
                "attempt_finished",
                "call_finished",
                "refused",
                "circuit_changed",
                "store_failed",
            )
        }
        self._call_started = hooks["call_started"]
        self._attempt_started = hooks["attempt_started"]
        self._attempt_finished = hooks["attempt_finished"]
        self._call_finished = hooks["call_finished"]
        self._refused = hooks["refused"]
        self._circuit_changed = hooks["circuit_changed"]
        self._store_failed = hooks["store_failed"]

    async def start(self) -> None:
        for observer in self.observers:
            await observer.start()

    async def aclose(self) -> None:
        for observer in self.observers:
            try:
                await observer.aclose()
            except Exception:  # the edge: one failing shutdown must not stop the others
                log.exception("observer failed", extra={"fields": {"hook": "aclose"}})

    def call_started(self, record: CallRecord) -> None:
        for observer in self._call_started:
            try:
                observer.call_started(record)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "call_started"}})

    def attempt_started(self, record: CallRecord, route: Route) -> dict[str, str]:
        headers: dict[str, str] = {}
        for observer in self._attempt_started:
            try:
                headers.update(observer.attempt_started(record, route))
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "attempt_started"}})
        return headers

    def attempt_finished(
        self, record: CallRecord, route: Route, error: str | None, seconds: float
    ) -> None:
        for observer in self._attempt_finished:
            try:
                observer.attempt_finished(record, route, error, seconds)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "attempt_finished"}})

    def call_finished(self, record: CallRecord) -> None:
        for observer in self._call_finished:
            try:
                observer.call_finished(record)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "call_finished"}})

    def refused(self, record: CallRecord, reason: str) -> None:
        for observer in self._refused:
            try:
                observer.refused(record, reason)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "refused"}})

    def circuit_changed(self, deployment: str, opened: bool) -> None:
        for observer in self._circuit_changed:
            try:
                observer.circuit_changed(deployment, opened)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "circuit_changed"}})

    def store_failed(self, store: str, operation: str) -> None:
        for observer in self._store_failed:
            try:
                observer.store_failed(store, operation)
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": "store_failed"}})
