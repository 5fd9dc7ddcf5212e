"""Budgets shared by several processes through the database (no Redis configured).

Each reservation is one transaction: make sure the period's row exists (seeded from the
spend records), then ``UPDATE ... SET held = held + :wanted WHERE spent + held + :wanted
<= :limit`` on every row; a row that does not change means the budget is exhausted and
the whole transaction rolls back. SQLite serializes writers and Postgres locks the rows,
so concurrent reservations from any process cannot overshoot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tollway.metering.budget import (
    NANO,
    Budget,
    Ledger,
    Reservation,
    exhausted,
    spent_in_db,
    to_nano,
)
from tollway.store.db import Database
from tollway.store.tables import BudgetSlot

Slot = tuple[str, str, datetime]


def _period(slot: Slot) -> str:
    return slot[2].strftime("%Y-%m-%d")


def _where(slot: Slot) -> tuple[ColumnElement[bool], ...]:
    return (
        BudgetSlot.kind == slot[0],
        BudgetSlot.owner_id == slot[1],
        BudgetSlot.period_start == _period(slot),
    )


class SqlLedger(Ledger):
    """Budgets kept in the ``budget_slots`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
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
                    period_start=_period(slot),
                    spent_nano=spent,
                    held_nano=0,
                )
                .on_conflict_do_nothing()
            )
        self._seeded.add(slot)

    async def reserve(self, budgets: list[Budget], amount: Decimal) -> Reservation:
        """Hold ``amount`` on every budget in one transaction, or raise PaymentRequired."""
        now = datetime.now(UTC)
        slots = [budget.slot(now) for budget in budgets]
        for slot in slots:
            await self._seed(slot)
        wanted = to_nano(amount)
        refused: tuple[Budget, int] | None = None
        async with self._db.transaction() as session:
            for budget, slot in zip(budgets, slots, strict=True):
                limit = to_nano(budget.limit_usd)
                result = await session.execute(
                    update(BudgetSlot)
                    .where(
                        *_where(slot),
                        BudgetSlot.spent_nano + BudgetSlot.held_nano + wanted <= limit,
                    )
                    .values(held_nano=BudgetSlot.held_nano + wanted)
                )
                if not getattr(result, "rowcount", 0):
                    used = await session.scalar(
                        select(BudgetSlot.spent_nano + BudgetSlot.held_nano).where(*_where(slot))
                    )
                    refused = (budget, int(used or 0))
                    await session.rollback()
                    break
        if refused is not None:
            raise exhausted(refused[0], refused[1], wanted)
        return Reservation(slots, wanted)

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        reservation.settled = True
        cost = to_nano(actual)
        async with self._db.transaction() as session:
            for slot in reservation.slots:
                await session.execute(
                    update(BudgetSlot)
                    .where(*_where(slot))
                    .values(
                        held_nano=BudgetSlot.held_nano - reservation.nano,
                        spent_nano=BudgetSlot.spent_nano + cost,
                    )
                )

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime.now(UTC))
        await self._seed(slot)
        async with self._db.reader() as session:
            used = await session.scalar(
                select(BudgetSlot.spent_nano + BudgetSlot.held_nano).where(*_where(slot))
            )
        return Decimal(int(used or 0)) / NANO
