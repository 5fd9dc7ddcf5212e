"""Budgets shared by several processes and hosts through the database (no Redis).

Each reservation is one transaction: make sure the period's row exists (seeded from the
spend records), then ``UPDATE ... SET held = held + :wanted WHERE spent + held + :wanted
<= :limit`` on every row and one ``budget_holds`` row per budget; a row that does not
change means the budget is exhausted and the whole transaction rolls back. Postgres
locks the rows, so concurrent reservations from any process cannot overshoot; reapers
take holds with ``DELETE ... RETURNING``, so two of them never reclaim one hold twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.metering.budget import (
    NANO,
    Budget,
    Ledger,
    Reservation,
    Slot,
    exhausted,
    lease_end,
    period_key,
    recorded_costs,
    refuse_early,
    spent_in_db,
    to_nano,
)
from tollway.store.db import Database
from tollway.store.tables import BudgetHold, BudgetSlot


def _where(kind: str, owner_id: str, period: str) -> tuple[ColumnElement[bool], ...]:
    return (
        BudgetSlot.kind == kind,
        BudgetSlot.owner_id == owner_id,
        BudgetSlot.period_start == period,
    )


async def _charge(
    session: AsyncSession, kind: str, owner_id: str, period: str, release: int, charge: int
) -> None:
    await session.execute(
        update(BudgetSlot)
        .where(*_where(kind, owner_id, period))
        .values(
            held_nano=BudgetSlot.held_nano - release,
            spent_nano=BudgetSlot.spent_nano + charge,
        )
    )


class SqlLedger(Ledger):
    """Budgets kept in the ``budget_slots`` and ``budget_holds`` tables."""

    def __init__(self, db: Database, instance: str) -> None:
        self._db = db
        self.instance = instance
        self._seeded: set[Slot] = set()
        dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert

    async def _seed(self, slot: Slot) -> None:
        if slot in self._seeded:
            return
        spent = await spent_in_db(self._db, *slot)
        async with self._db.transaction() as session:
            await session.execute(
                self._insert(BudgetSlot)
                .values(
                    kind=slot[0],
                    owner_id=slot[1],
                    period_start=period_key(slot),
                    spent_nano=spent,
                    held_nano=0,
                )
                .on_conflict_do_nothing()
            )
        self._seeded.add(slot)

    async def reserve(self, budgets: list[Budget], amount: Decimal, request_id: str) -> Reservation:
        """Hold ``amount`` on every budget in one transaction, or raise PaymentRequired."""
        wanted = to_nano(amount)
        refuse_early(budgets, wanted)
        now = time.time()
        slots = [budget.slot(datetime.fromtimestamp(now, UTC)) for budget in budgets]
        for slot in slots:
            await self._seed(slot)
        refused: tuple[Budget, int] | None = None
        async with self._db.transaction() as session:
            for budget, slot in zip(budgets, slots, strict=True):
                where = _where(slot[0], slot[1], period_key(slot))
                result: Any = await session.execute(
                    update(BudgetSlot)
                    .where(
                        *where,
                        BudgetSlot.spent_nano + BudgetSlot.held_nano + wanted
                        <= to_nano(budget.limit_usd),
                    )
                    .values(held_nano=BudgetSlot.held_nano + wanted)
                )
                if not result.rowcount:
                    used = await session.scalar(
                        select(BudgetSlot.spent_nano + BudgetSlot.held_nano).where(*where)
                    )
                    refused = (budget, int(used or 0))
                    await session.rollback()
                    break
                await session.execute(
                    insert(BudgetHold).values(
                        request_id=request_id,
                        kind=slot[0],
                        owner_id=slot[1],
                        period_start=period_key(slot),
                        nano=wanted,
                        instance=self.instance,
                        expires_at=lease_end(now),
                    )
                )
        if refused is not None:
            raise exhausted(refused[0], refused[1], wanted)
        return Reservation(slots, wanted, request_id)

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        cost = to_nano(actual)
        async with self._db.transaction() as session:
            nano = reservation.nano
            for slot in reservation.slots:
                dropped: Any = await session.execute(
                    delete(BudgetHold).where(
                        BudgetHold.request_id == reservation.request_id,
                        BudgetHold.kind == slot[0],
                    )
                )
                period = period_key(slot)
                if dropped.rowcount:
                    await _charge(session, slot[0], slot[1], period, nano, cost)
                else:
                    # A reaper took the hold (charging all of it): correct to the actual.
                    await _charge(session, slot[0], slot[1], period, 0, cost - nano)
        reservation.settled = True

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime.now(UTC))
        await self._seed(slot)
        async with self._db.reader() as session:
            used = await session.scalar(
                select(BudgetSlot.spent_nano + BudgetSlot.held_nano).where(
                    *_where(slot[0], slot[1], period_key(slot))
                )
            )
        return Decimal(int(used or 0)) / NANO

    async def keep(self, reservations: list[Reservation]) -> None:
        """Renew the lease of every hold this process has."""
        if not reservations:
            return
        async with self._db.transaction() as session:
            await session.execute(
                update(BudgetHold)
                .where(BudgetHold.instance == self.instance)
                .values(expires_at=lease_end())
            )

    async def reap(self, instance: str | None = None) -> int:
        """Reclaim a dead instance's holds (at their recorded cost when the call has a
        record), or every expired hold (at its full amount: its process may be alive and
        settle later, correcting it)."""
        condition = (
            BudgetHold.instance == instance
            if instance is not None
            else BudgetHold.expires_at < int(time.time())
        )
        columns = (
            BudgetHold.request_id,
            BudgetHold.kind,
            BudgetHold.owner_id,
            BudgetHold.period_start,
            BudgetHold.nano,
        )
        async with self._db.transaction() as session:
            taken = list(
                await session.execute(delete(BudgetHold).where(condition).returning(*columns))
            )
            costs: dict[str, int] = {}
            if instance is not None:
                costs = await recorded_costs(self._db, [row[0] for row in taken])
            for request_id, kind, owner_id, period, nano in taken:
                await _charge(session, kind, owner_id, period, nano, costs.get(request_id, nano))
        return len({row[0] for row in taken})
