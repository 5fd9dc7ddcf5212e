"""Budgets that never overshoot: reserve the worst case, settle to the actual cost.

Admission reserves a call's worst-case cost against every budget that applies (the key's
and its project's) in one atomic step, or refuses with 402; when the call ends the
reservation is replaced by what it really cost. Amounts are integer nano-dollars inside
ledgers, so every backend adds exactly.

Ledgers: ``SqlLedger`` (the database: a conditional UPDATE, exact for any number of
processes sharing it) and ``RedisLedger`` (one Lua script; faster, for many hosts), both
starting a period's spend from the spend records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from tollway.errors import PaymentRequired
from tollway.store.db import Database
from tollway.store.spend import from_pico
from tollway.store.tables import SpendRecord

NANO = Decimal(1_000_000_000)
LIFETIME = datetime(1970, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget that applies to a call."""

    kind: str  # "key" or "project"
    owner_id: str
    limit_usd: Decimal
    period: str | None

    def slot(self, now: datetime) -> tuple[str, str, datetime]:
        """The ledger slot for the current period."""
        return (self.kind, self.owner_id, period_start(self.period, now))


@dataclass(slots=True)
class Reservation:
    """Money held for one call until it settles."""

    slots: list[tuple[str, str, datetime]]
    nano: int
    settled: bool = False


class Ledger:
    """Reserve and settle against budgets."""

    async def reserve(self, budgets: list[Budget], amount: Decimal) -> Reservation:
        """Hold ``amount`` on every budget, or raise PaymentRequired."""
        raise NotImplementedError

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        raise NotImplementedError

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        raise NotImplementedError


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
    """Nano-dollars recorded for an owner since ``since``."""
    column = SpendRecord.key_id if kind == "key" else SpendRecord.project_id
    async with db.reader() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(SpendRecord.cost_pico), 0)).where(
                column == owner_id, SpendRecord.ts >= since
            )
        )
    return to_nano(from_pico(int(total or 0)))
