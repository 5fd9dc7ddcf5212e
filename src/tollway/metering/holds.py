"""Keeping this process's budget holds honest while it lives.

Every ``KEEP_SECONDS`` a background task renews the lease of the holds of calls still
running, retries settlements that failed (the ledger was unreachable when the call
ended: the call itself was answered), and reclaims holds whose lease ran out (their
process died on another host). At startup, holds of dead processes on this data dir are
reclaimed as soon as their journals are replayed (``Recorder.recovered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

from tollway.metering.budget import KEEP_SECONDS, Ledger, Reservation
from tollway.store.failures import StoreFailures
from tollway.tasks import stop

log = logging.getLogger("tollway.metering")
_GIVE_UP = 20  # rounds (five minutes) before a settlement that keeps failing is left


class Holds:
    """The reservations of this process's calls, from admission to settlement."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.failures = StoreFailures()  # the meter hands it the database's
        self._live: dict[str, Reservation] = {}
        self._unsettled: dict[str, tuple[Reservation, Decimal]] = {}
        self._failures: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, reservation: Reservation) -> None:
        """A hold was taken for a call now running."""
        self._live[reservation.request_id] = reservation

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Settle the hold; if the ledger fails, keep it and retry in the background."""
        self._live.pop(reservation.request_id, None)
        try:
            await self.ledger.settle(reservation, actual)
        except Exception:  # the edge: the call was answered; its settlement is retried
            self.failures.report(self.ledger.store, "budget_settle")
            log.warning(
                "settling a budget hold failed; will retry",
                extra={"fields": {"request_id": reservation.request_id}},
                exc_info=True,
            )
            self._unsettled[reservation.request_id] = (reservation, actual)

    @property
    def unsettled(self) -> int:
        """Settlements waiting for the ledger."""
        return len(self._unsettled)

    def start(self) -> None:
        """Start the background keeper."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tollway-holds")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(KEEP_SECONDS)
            await self.tick()

    async def tick(self) -> None:
        """One round: retry settlements, renew leases, reclaim expired holds."""
        for request_id, (reservation, actual) in list(self._unsettled.items()):
            try:
                await self.ledger.settle(reservation, actual)
            except Exception:  # the edge: try again next round
                self.failures.report(self.ledger.store, "budget_settle")
                failures = self._failures[request_id] = self._failures.get(request_id, 0) + 1
                log.warning(
                    "settlement retry failed",
                    extra={"fields": {"request_id": request_id, "failures": failures}},
                    exc_info=True,
                )
                del self._unsettled[request_id]
                if failures >= _GIVE_UP:
                    # No longer renewed: the reaper reclaims the hold at its full amount,
                    # which errs toward refusing, never toward overspending.
                    log.error("giving up a settlement", extra={"fields": {"id": request_id}})
                    del self._failures[request_id]
                else:
                    self._unsettled[request_id] = (reservation, actual)  # to the back
                break  # the ledger is likely down: the next round tries again
            del self._unsettled[request_id]
            self._failures.pop(request_id, None)
        try:
            running = [*self._live.values(), *(r for r, _ in self._unsettled.values())]
            await self.ledger.keep(running)
            reaped = await self.ledger.reap()
        except Exception:  # the edge: the next round tries again
            log.warning("renewing or reclaiming budget holds failed", exc_info=True)
            self.failures.report(self.ledger.store, "budget_holds")
            return
        if reaped:
            log.warning("reclaimed expired budget holds", extra={"fields": {"calls": reaped}})

    async def reclaim(self, instance: str) -> None:
        """Reclaim every hold of a dead process (its records are already replayed)."""
        reaped = await self.ledger.reap(instance)
        if reaped:
            log.warning(
                "reclaimed a dead process's budget holds",
                extra={"fields": {"instance": instance, "calls": reaped}},
            )

    async def aclose(self) -> None:
        """Stop the keeper; try the waiting settlements once more."""
        task, self._task = self._task, None
        await stop(task)
        if self._unsettled:
            with contextlib.suppress(Exception):
                await self.tick()
        await self.ledger.aclose()
