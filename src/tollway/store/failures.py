"""Where a failed database or Redis operation is reported, so that it is counted.

Each component that handles a store's failure (serves stale state, retries later, or
refuses the call with a 503) also reports it here, once per failed operation, naming the
store (``database`` or ``redis``) and a fixed operation name. The gateway points the
``listener`` at telemetry (``Observer.store_failed``: ``tollway_store_errors_total``);
without one, a report does nothing. One per ``Database`` (``Database.failures``), so
that every component holding the database can report without more wiring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("tollway.store")

# (store, operation)
StoreFailed = Callable[[str, str], None]


class StoreFailures:
    """Reports of failed store operations, passed on to one listener."""

    __slots__ = ("listener",)

    def __init__(self) -> None:
        self.listener: StoreFailed | None = None

    def report(self, store: str, operation: str) -> None:
        """``store`` failed ``operation`` (never raises)."""
        listener = self.listener
        if listener is None:
            return
        try:
            listener(store, operation)
        except Exception:  # the edge: counting a failure must not cause another
            log.exception("reporting a store failure failed")
