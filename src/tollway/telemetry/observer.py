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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.routing.router import Route

log = logging.getLogger("tollway.telemetry")
T = TypeVar("T")


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


class Observers(Observer):
    """Several observers as one; one that raises is logged and the others still run."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def _each(self, hook: str, call: Callable[[Observer], T]) -> list[T]:
        results = []
        for observer in self.observers:
            try:
                results.append(call(observer))
            except Exception:  # the edge: telemetry never fails a call
                log.exception("observer failed", extra={"fields": {"hook": hook}})
        return results

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
        self._each("call_started", lambda o: o.call_started(record))

    def attempt_started(self, record: CallRecord, route: Route) -> dict[str, str]:
        headers: dict[str, str] = {}
        for extra in self._each("attempt_started", lambda o: o.attempt_started(record, route)):
            headers.update(extra)
        return headers

    def attempt_finished(
        self, record: CallRecord, route: Route, error: str | None, seconds: float
    ) -> None:
        self._each("attempt_finished", lambda o: o.attempt_finished(record, route, error, seconds))

    def call_finished(self, record: CallRecord) -> None:
        self._each("call_finished", lambda o: o.call_finished(record))

    def refused(self, record: CallRecord, reason: str) -> None:
        self._each("refused", lambda o: o.refused(record, reason))

    def circuit_changed(self, deployment: str, opened: bool) -> None:
        self._each("circuit_changed", lambda o: o.circuit_changed(deployment, opened))

    def store_failed(self, store: str, operation: str) -> None:
        self._each("store_failed", lambda o: o.store_failed(store, operation))
