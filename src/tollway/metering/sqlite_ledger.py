"""Budgets in the SQLite file itself, for the default single-node deployment.

The same ``budget_slots`` and ``budget_holds`` rows as ``SqlLedger``, but each
reservation or settlement is one short write transaction on a stdlib connection owned by
one worker thread (a single hop off the event loop), where the async driver spends
milliseconds per operation. ``BEGIN IMMEDIATE`` takes SQLite's single write lock up
front, so reservations from every process on this file are serialized and none can
overshoot. The wait for the lock happens in the worker thread, never on the event loop,
which may itself be finishing the transaction that holds it (a commit can also sync the
WAL, which must not happen on the loop). The lock is polled every
``LOCK_POLL_SECONDS``: SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries,
so a reservation that found the spend writer committing waited 8-18 ms for a lock
released after one or two. Whatever fails inside a transaction, it is rolled back before
the error leaves the thread: the lock is never left held.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from tollway.metering.budget import (
    NANO,
    Budget,
    Ledger,
    Reservation,
    Slot,
    exhausted,
    lease_end,
    period_key,
    refuse_early,
    to_nano,
)
from tollway.store.rollups import DAY, bucket
from tollway.store.spend import from_pico

T = TypeVar("T")

# How long a write waits for the lock in all, and how often it tries meanwhile.
LOCK_PATIENCE_SECONDS = 5.0
LOCK_POLL_SECONDS = 0.0002

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
_CHARGE = (
    "UPDATE budget_slots SET held_nano = held_nano - ?, spent_nano = spent_nano + ? "
    "WHERE kind = ? AND owner_id = ? AND period_start = ?"
)
_ADD_HOLD = (
    "INSERT INTO budget_holds (request_id, kind, owner_id, period_start, nano, instance, "
    "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DROP_HOLD = "DELETE FROM budget_holds WHERE request_id = ? AND kind = ?"
_KEEP = "UPDATE budget_holds SET expires_at = ? WHERE instance = ?"
_HOLDS_RETURNING = "RETURNING request_id, kind, owner_id, period_start, nano"
_RECORDED = "SELECT cost_pico FROM spend WHERE request_id = ?"


def _key(slot: Slot) -> tuple[str, str, str]:
    return slot[0], slot[1], period_key(slot)


class SqliteLedger(Ledger):
    """Budget slots on a stdlib connection to the gateway's SQLite file."""

    def __init__(self, path: Path, instance: str) -> None:
        self._path = path
        self.instance = instance
        self._conn: sqlite3.Connection | None = None
        self._seeded: set[Slot] = set()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-ledger")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def guarded() -> T:
            conn = self._connection()
            try:
                return work(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

        return await asyncio.get_running_loop().run_in_executor(self._thread, guarded)

    def _execute(
        self, conn: sqlite3.Connection, statement: str, params: tuple[object, ...] = ()
    ) -> sqlite3.Cursor:
        """Run a statement that may find the database busy (one taking the write lock,
        ``BEGIN IMMEDIATE`` or a write outside a transaction; rarely a read, while the
        WAL is recovered), trying again every ``LOCK_POLL_SECONDS`` for up to
        ``LOCK_PATIENCE_SECONDS`` (then the "database is locked" error)."""
        deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
        while True:
            try:
                return conn.execute(statement, params)
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended too
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0.0
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _spent_in_records(self, conn: sqlite3.Connection, slot: Slot) -> int:
        # From the daily rollup cells, which retention never deletes: a budget period
        # starts at a UTC day (or 1970), so whole days sum it exactly.
        column = "key_id" if slot[0] == "key" else "project_id"
        row = self._execute(
            conn,
            f"SELECT COALESCE(SUM(cost_pico), 0) FROM spend_rollups "  # noqa: S608
            f"WHERE {column} = ? AND span = ? AND bucket >= ?",
            (slot[1], DAY, bucket(slot[2], DAY)),
        ).fetchone()
        return to_nano(from_pico(int(row[0] or 0)))

    def _seed(self, conn: sqlite3.Connection, slot: Slot) -> None:
        if slot not in self._seeded:
            self._execute(conn, _SEED, (*_key(slot), self._spent_in_records(conn, slot)))
            self._seeded.add(slot)

    async def reserve(self, budgets: list[Budget], amount: Decimal, request_id: str) -> Reservation:
        """Hold ``amount`` on every budget in one transaction, or raise PaymentRequired."""
        wanted = to_nano(amount)
        refuse_early(budgets, wanted)
        slots = await self._run(lambda conn: self._reserve(conn, budgets, wanted, request_id))
        return Reservation(slots, wanted, request_id)

    def _reserve(
        self, conn: sqlite3.Connection, budgets: list[Budget], wanted: int, request_id: str
    ) -> list[Slot]:
        now = time.time()
        slots = [budget.slot(datetime_utc(now)) for budget in budgets]
        for slot in slots:
            self._seed(conn, slot)  # committed on its own: a refusal must not undo it
        self._execute(conn, "BEGIN IMMEDIATE")
        for budget, slot in zip(budgets, slots, strict=True):
            key = _key(slot)
            held = conn.execute(_HOLD, (wanted, *key, wanted, to_nano(budget.limit_usd)))
            if held.rowcount == 0:
                used = conn.execute(_USED, key).fetchone()
                conn.execute("ROLLBACK")
                raise exhausted(budget, int(used[0] if used else 0), wanted)
            conn.execute(_ADD_HOLD, (request_id, *key, wanted, self.instance, lease_end(now)))
        conn.execute("COMMIT")
        return slots

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        cost = to_nano(actual)
        await self._run(lambda conn: self._settle(conn, reservation, cost))
        reservation.settled = True

    def _settle(self, conn: sqlite3.Connection, reservation: Reservation, cost: int) -> None:
        self._execute(conn, "BEGIN IMMEDIATE")
        for slot in reservation.slots:
            key = _key(slot)
            if conn.execute(_DROP_HOLD, (reservation.request_id, slot[0])).rowcount:
                conn.execute(_CHARGE, (reservation.nano, cost, *key))
            else:
                # A reaper took the hold (charging all of it): correct to the actual cost.
                conn.execute(_CHARGE, (0, cost - reservation.nano, *key))
        conn.execute("COMMIT")

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime_utc(time.time()))
        return await self._run(lambda conn: self._spent(conn, slot))

    def _spent(self, conn: sqlite3.Connection, slot: Slot) -> Decimal:
        self._seed(conn, slot)
        row = self._execute(conn, _USED, _key(slot)).fetchone()
        return Decimal(int(row[0] if row else 0)) / NANO

    async def keep(self, reservations: list[Reservation]) -> None:
        """Renew the lease of every hold this process has."""
        if reservations:
            await self._run(lambda conn: self._execute(conn, _KEEP, (lease_end(), self.instance)))

    async def reap(self, instance: str | None = None) -> int:
        """Reclaim a dead instance's holds (at their recorded cost when the call has a
        record), or every expired hold (at its full amount: its process may be alive and
        settle later, correcting it)."""
        return await self._run(lambda conn: self._reap(conn, instance))

    def _reap(self, conn: sqlite3.Connection, instance: str | None) -> int:
        self._execute(conn, "BEGIN IMMEDIATE")
        if instance is not None:
            taken = conn.execute(
                f"DELETE FROM budget_holds WHERE instance = ? {_HOLDS_RETURNING}",  # noqa: S608
                (instance,),
            ).fetchall()
        else:
            taken = conn.execute(
                f"DELETE FROM budget_holds WHERE expires_at < ? {_HOLDS_RETURNING}",  # noqa: S608
                (int(time.time()),),
            ).fetchall()
        for request_id, kind, owner_id, period, nano in taken:
            charge = nano
            if instance is not None:
                row = conn.execute(_RECORDED, (request_id,)).fetchone()
                if row is not None:
                    charge = to_nano(from_pico(int(row[0] or 0)))
            conn.execute(_CHARGE, (nano, charge, kind, owner_id, period))
        conn.execute("COMMIT")
        return len({row[0] for row in taken})

    async def aclose(self) -> None:
        """Close the connection (in its thread) and stop the thread."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=True)


def datetime_utc(ts: float) -> datetime:
    """A UNIX time as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)
