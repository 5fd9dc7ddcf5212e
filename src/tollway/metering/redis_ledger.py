"""Budgets shared by many processes and hosts: one atomic Lua script in Redis.

Each slot is a hash ``{spent, held}`` in nano-dollars under
``<prefix>budget:<kind>:<owner>:<period start>``. A slot missing from Redis is seeded
from the database (``HSETNX``, so concurrent seeders agree) before the script retries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: slot hashes. ARGV: wanted, then one limit per key.
# Returns 0 on success, -i when slot i is not seeded yet, i when slot i is exhausted.
_RESERVE = """
local wanted = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then return -i end
end
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
  local held = tonumber(redis.call('HGET', key, 'held') or '0')
  if spent + held + wanted > tonumber(ARGV[i + 1]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'held', wanted)
end
return 0
"""

_SETTLE = """
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'held', -tonumber(ARGV[1]))
  redis.call('HINCRBY', key, 'spent', tonumber(ARGV[2]))
end
return 0
"""

_SLOT_TTL_SECONDS = 40 * 86400


class RedisLedger(Ledger):
    """Budgets in Redis: exact across every gateway process."""

    def __init__(self, db: Database, redis: Redis, prefix: str) -> None:
        self._db = db
        self._redis = redis
        self._prefix = prefix
        self._reserve: Any = redis.register_script(_RESERVE)
        self._settle: Any = redis.register_script(_SETTLE)

    def _key(self, slot: tuple[str, str, datetime]) -> str:
        kind, owner, start = slot
        return f"{self._prefix}budget:{kind}:{owner}:{start.strftime('%Y%m%d')}"

    async def _seed(self, slot: tuple[str, str, datetime]) -> None:
        key = self._key(slot)
        spent = await spent_in_db(self._db, *slot)
        await self._redis.hsetnx(key, "spent", spent)
        await self._redis.hsetnx(key, "held", 0)
        if slot[2].year > 1970:
            await self._redis.expire(key, _SLOT_TTL_SECONDS)

    async def reserve(self, budgets: list[Budget], amount: Decimal) -> Reservation:
        """Hold ``amount`` on every budget atomically, or raise PaymentRequired."""
        now = datetime.now(UTC)
        slots = [budget.slot(now) for budget in budgets]
        keys = [self._key(slot) for slot in slots]
        wanted = to_nano(amount)
        limits = [to_nano(budget.limit_usd) for budget in budgets]
        for _ in range(len(slots) + 1):
            result = int(await self._reserve(keys=keys, args=[wanted, *limits]))
            if result == 0:
                return Reservation(slots, wanted)
            if result < 0:
                await self._seed(slots[-result - 1])
                continue
            budget = budgets[result - 1]
            spent = await self._redis.hmget(keys[result - 1], ["spent", "held"])
            used = sum(int(value or 0) for value in spent)
            raise exhausted(budget, used, wanted)
        raise RuntimeError("budget slots could not be seeded")

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        reservation.settled = True
        keys = [self._key(slot) for slot in reservation.slots]
        await self._settle(keys=keys, args=[reservation.nano, to_nano(actual)])

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime.now(UTC))
        key = self._key(slot)
        if not await self._redis.exists(key):
            await self._seed(slot)
        values = await self._redis.hmget(key, ["spent", "held"])
        return Decimal(sum(int(value or 0) for value in values)) / NANO
