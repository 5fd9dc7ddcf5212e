"""Budgets that never overshoot: reserve the worst case, settle to the actual cost.

Admission reserves a call's worst-case cost against every budget that applies (the key's
and its project's) in one atomic step, or refuses with 402; when the call ends the
reservation is replaced by what it really cost. Amounts are integer nano-dollars inside
ledgers, so every backend adds exactly; every amount is bounded (``bounds.py``) so no
integer can overflow.

A reservation is a *hold* with an owner (the gateway process, ``instance``) and a lease
(``HOLD_SECONDS``), renewed by its process while the call runs. A hold whose process
died is reclaimed: at once when the same data dir's next process starts (its journal
lock is free), and by any process once the lease has run out. Reclaiming charges what
the call is known to have cost (its spend record), else the whole hold, so a crash
errs toward refusing, never toward overspending.

Ledgers: ``SqliteLedger`` (the default single node: a stdlib connection in one thread),
``SqlLedger`` (Postgres, several hosts without Redis) and ``RedisLedger`` (one Lua
script; a cache of the database's spend, rebuilt after a Redis restart).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from tollway.errors import PaymentRequired
from tollway.store.db import Database
from tollway.store.spend import from_pico, recorded_pico
from tollway.store.tables import SpendRecord

NANO = Decimal(1_000_000_000)
LIFETIME = datetime(1970, 1, 1, tzinfo=UTC)
HOLD_SECONDS = 60
KEEP_SECONDS = 15.0

Slot = tuple[str, str, datetime]


def to_nano(amount: Decimal) -> int:
    """USD to integer nano-dollars, rounding up (a reservation never falls short)."""
    scaled = amount * NANO
    whole = int(scaled)
    return whole + 1 if scaled > whole else whole


def period_start(period: str | None, now: datetime) -> datetime:
    """Start of the budget period containing ``now`` (UTC)."""
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return LIFETIME


def period_key(slot: Slot) -> str:
    """A slot's period as stored: ``YYYY-MM-DD`` of its start."""
    return slot[2].strftime("%Y-%m-%d")


def lease_end(now: float | None = None) -> int:
    """When a hold taken or renewed now expires (UNIX seconds)."""
    return int(now if now is not None else time.time()) + HOLD_SECONDS


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget that applies to a call."""

    kind: str  # "key" or "project"
    owner_id: str
    limit_usd: Decimal
    period: str | None

    def slot(self, now: datetime) -> Slot:
        """The ledger slot for the current period."""
        return (self.kind, self.owner_id, period_start(self.period, now))


@dataclass(slots=True)
class Reservation:
    """Money held for one call until it settles."""

    slots: list[Slot]
    nano: int
    request_id: str
    generation: str | None = None  # Redis: the slots' generation when held
    settled: bool = False


class Ledger:
    """Reserve and settle against budgets; reclaim what dead processes held."""

    instance: str = ""
    store = "database"  # what a failure of this ledger is counted as

    async def reserve(self, budgets: list[Budget], amount: Decimal, request_id: str) -> Reservation:
        """Hold ``amount`` on every budget, or raise PaymentRequired."""
        raise NotImplementedError

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        raise NotImplementedError

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        raise NotImplementedError

    async def keep(self, reservations: list[Reservation]) -> None:
        """Renew the lease of this process's holds (calls still running)."""
        raise NotImplementedError

    async def reap(self, instance: str | None = None) -> int:
        """Reclaim the holds of a dead ``instance``, or every expired hold; returns how
        many calls' holds were reclaimed."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections and threads."""


def refuse_early(budgets: list[Budget], wanted: int) -> None:
    """402 without touching the ledger when a call could not fit even an unused budget
    (this also keeps absurd amounts away from the database's integers)."""
    for budget in budgets:
        if wanted > to_nano(budget.limit_usd):
            raise exhausted(budget, 0, wanted)


def exhausted(budget: Budget, spent_nano: int, wanted_nano: int) -> PaymentRequired:
    """The 402 for a budget that cannot take ``wanted_nano`` more."""
    owner = "API key" if budget.kind == "key" else "project"
    period = f" for this {budget.period}" if budget.period else ""
    left = max(to_nano(budget.limit_usd) - spent_nano, 0) / NANO
    limit = format(budget.limit_usd.normalize(), "f")
    return PaymentRequired(
        f"Budget exhausted: the {owner}'s budget of ${limit}{period} has "
        f"${left:.6f} left, and this request may cost up to ${wanted_nano / NANO:.6f}. "
        "Lower max_tokens or raise the budget."
    )


async def spent_in_db(db: Database, kind: str, owner_id: str, since: datetime) -> int:
    """Nano-dollars recorded for an owner since ``since``: from the spend rollups, which
    retention never deletes, so dropping old spend rows never changes a budget."""
    owner = {"key_id": owner_id} if kind == "key" else {"project_id": owner_id}
    async with db.reader() as session:
        total = await recorded_pico(session, since=since, **owner)
    return to_nano(from_pico(total))


async def recorded_costs(db: Database, request_ids: list[str]) -> dict[str, int]:
    """Nano-dollars recorded for each of these calls (those that have a record)."""
    if not request_ids:
        return {}
    async with db.reader() as session:
        rows = await session.execute(
            select(SpendRecord.request_id, SpendRecord.cost_pico).where(
                SpendRecord.request_id.in_(request_ids)
            )
        )
        return {rid: to_nano(from_pico(int(pico or 0))) for rid, pico in rows}
