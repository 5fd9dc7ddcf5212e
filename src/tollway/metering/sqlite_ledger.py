"""Budgets in the SQLite file itself, for the default single-node deployment.

The same ``budget_slots`` rows and conditional UPDATEs as ``SqlLedger``, but each
reservation or settlement is one short write transaction on a stdlib connection owned by
one worker thread (a single hop off the event loop), where the async driver spends
milliseconds per operation. ``BEGIN IMMEDIATE`` takes SQLite's single write lock up
front, so reservations from every process on this file are serialized and none can
overshoot. The wait for the lock happens in the worker thread, never on the event loop,
which may itself be finishing the transaction that holds it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from tollway.metering.budget import NANO, Budget, Ledger, Reservation, exhausted, to_nano
from tollway.store.spend import from_pico

Slot = tuple[str, str, datetime]
T = TypeVar("T")

_SEED = (
    "INSERT OR IGNORE INTO budget_slots (kind, owner_id, period_start, spent_nano, held_nano) "
    "VALUES (?, ?, ?, ?, 0)"
)
_HOLD = (
    "UPDATE budget_slots SET held_nano = held_nano + ? "
    "WHERE kind = ? AND owner_id = ? AND period_start = ? "
    "AND spent_nano + held_nano + ? <= ?"
)
_USED = (
    "SELECT spent_nano + held_nano FROM budget_slots "
    "WHERE kind = ? AND owner_id = ? AND period_start = ?"
)
_SETTLE = (
    "UPDATE budget_slots SET held_nano = held_nano - ?, spent_nano = spent_nano + ? "
    "WHERE kind = ? AND owner_id = ? AND period_start = ?"
)


def _key(slot: Slot) -> tuple[str, str, str]:
    return slot[0], slot[1], slot[2].strftime("%Y-%m-%d")


class SqliteLedger(Ledger):
    """Budget slots on a stdlib connection to the gateway's SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._seeded: set[Slot] = set()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-ledger")

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _spent_in_records(self, conn: sqlite3.Connection, slot: Slot) -> int:
        column = "key_id" if slot[0] == "key" else "project_id"
        since = slot[2].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        row = conn.execute(
            f"SELECT COALESCE(SUM(cost_pico), 0) FROM spend WHERE {column} = ? AND ts >= ?",  # noqa: S608
            (slot[1], since),
        ).fetchone()
        return to_nano(from_pico(int(row[0] or 0)))

    def _seed(self, conn: sqlite3.Connection, slot: Slot) -> None:
        if slot not in self._seeded:
            conn.execute(_SEED, (*_key(slot), self._spent_in_records(conn, slot)))
            self._seeded.add(slot)

    async def reserve(self, budgets: list[Budget], amount: Decimal) -> Reservation:
        """Hold ``amount`` on every budget in one transaction, or raise PaymentRequired."""
        return await self._run(lambda: self._reserve(budgets, amount))

    def _reserve(self, budgets: list[Budget], amount: Decimal) -> Reservation:
        now = datetime.now(UTC)
        slots = [budget.slot(now) for budget in budgets]
        wanted = to_nano(amount)
        conn = self._connection()
        for slot in slots:
            self._seed(conn, slot)  # committed on its own: a refusal must not undo it
        conn.execute("BEGIN IMMEDIATE")
        try:
            for budget, slot in zip(budgets, slots, strict=True):
                key = _key(slot)
                held = conn.execute(_HOLD, (wanted, *key, wanted, to_nano(budget.limit_usd)))
                if held.rowcount == 0:
                    used = conn.execute(_USED, key).fetchone()
                    conn.execute("ROLLBACK")
                    raise exhausted(budget, int(used[0] if used else 0), wanted)
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        return Reservation(slots, wanted)

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        reservation.settled = True
        await self._run(lambda: self._settle(reservation, to_nano(actual)))

    def _settle(self, reservation: Reservation, cost: int) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for slot in reservation.slots:
                conn.execute(_SETTLE, (reservation.nano, cost, *_key(slot)))
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime.now(UTC))
        return await self._run(lambda: self._spent(slot))

    def _spent(self, slot: Slot) -> Decimal:
        conn = self._connection()
        self._seed(conn, slot)
        row = conn.execute(_USED, _key(slot)).fetchone()
        return Decimal(int(row[0] if row else 0)) / NANO

    def close(self) -> None:
        """Close the connection (in its thread) and stop the thread."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._thread.submit(conn.close).result()
        self._thread.shutdown(wait=True)
