"""Budgets shared by many processes and hosts: atomic Lua scripts in Redis, kept as a
cache of the database's spend, never as its source.

Keys (under the configured prefix):

    budget:<kind>:<owner>:<YYYYMMDD>       hash {spent, held, gen}: one budget period
    budget:<kind>:<owner>:<YYYYMMDD>:late  calls settled while the slot was missing
                                           (request id -> nano-dollars)
    budget-holds                           sorted set: one member per hold, scored by
                                           its lease's end
    budget-generation                      "<id>:<unix ms>": who is this Redis's data

Redis may lose everything (a restart without persistence, a flush, an eviction). The
first script to find ``budget-generation`` missing starts a new generation stamped with
the time. A slot that is missing, or from another generation, is rebuilt from the
database's spend records before anything is admitted on it; the rebuild waits until
``REBUILD_HORIZON`` seconds after the generation began, so that every record settled
before Redis came back has been flushed by its process. A call held before the loss
settles into the slot's ``late`` hash while the slot is missing; the rebuild adds the
late calls whose records are not in the database yet, so each counts once. A call
settling into a slot already rebuilt counts as spend (its record may also have been in
the database the rebuild read, if its settlement was delayed, e.g. retried while Redis
was unreachable: it then counts twice until the period ends, which errs toward
refusing). No call counts zero times: no key spends past its budget because Redis forgot.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.metering.budget import (
    NANO,
    Budget,
    Ledger,
    Reservation,
    Slot,
    exhausted,
    lease_end,
    recorded_costs,
    refuse_early,
    spent_in_db,
    to_nano,
)
from tollway.store.db import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

REBUILD_HORIZON = 2.0
_SLOT_TTL_SECONDS = 40 * 86400
_LATE_TTL_SECONDS = 2 * 86400
_REAP_BATCH = 200

# A generation: the existing one, or a new one stamped with the server's time.
_GENERATION = """
local gen = redis.call('GET', KEYS[1])
if not gen then
  local t = redis.call('TIME')
  gen = ARGV[1] .. ':' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('SET', KEYS[1], gen)
end
"""

# KEYS: generation, holds, slots... ARGV: new generation id, wanted, hold member, lease
# end, one limit per slot. Returns {0, gen} (held), {-i, gen} (slot i must be rebuilt)
# or {i, gen} (slot i cannot take it).
_RESERVE = (
    _GENERATION
    + """
for i = 3, #KEYS do
  if redis.call('HGET', KEYS[i], 'gen') ~= gen then return {2 - i, gen} end
end
local member = ARGV[3] .. '|' .. gen
if redis.call('ZSCORE', KEYS[2], member) then return {0, gen} end  -- sent twice
local wanted = tonumber(ARGV[2])
for i = 3, #KEYS do
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  local held = tonumber(redis.call('HGET', KEYS[i], 'held') or '0')
  if spent + held + wanted > tonumber(ARGV[i + 2]) then return {i - 2, gen} end
end
for i = 3, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'held', wanted)
end
redis.call('ZADD', KEYS[2], ARGV[4], member)
return {0, gen}
"""
)

# KEYS: generation, slot, its late hash. ARGV: generation seen, spent in the database,
# ttl (0: none), then the late calls whose records the database already has. Returns 1
# when the slot is current, 0 when the generation moved on meanwhile.
_REBUILD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'gen') == ARGV[1] then return 1 end
local counted = {}
for i = 4, #ARGV do counted[ARGV[i]] = true end
local spent = tonumber(ARGV[2])
local late = redis.call('HGETALL', KEYS[3])
for i = 1, #late, 2 do
  if not counted[late[i]] then spent = spent + tonumber(late[i + 1]) end
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[2], 'spent', spent, 'held', 0, 'gen', ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 1
"""

# KEYS: holds, slots... ARGV: hold member, held nano, actual nano, hold's generation,
# late ttl, request id. The hold's own generation: release it and charge the actual cost
# (if a reaper took it first, it charged the whole hold: correct that). A missing slot:
# note the call as late (the rebuild counts it). Another generation: the hold is gone
# with the old data; charge the actual cost as spend.
_SETTLE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local nano, actual = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 2, #KEYS do
  local gen = redis.call('HGET', KEYS[i], 'gen')
  if not gen then
    redis.call('HSET', KEYS[i] .. ':late', ARGV[6], actual)
    redis.call('EXPIRE', KEYS[i] .. ':late', ARGV[5])
  elseif gen == ARGV[4] and removed == 1 then
    redis.call('HINCRBY', KEYS[i], 'held', -nano)
    redis.call('HINCRBY', KEYS[i], 'spent', actual)
  elseif gen == ARGV[4] then
    redis.call('HINCRBY', KEYS[i], 'spent', actual - nano)
  else
    redis.call('HINCRBY', KEYS[i], 'spent', actual)
  end
end
return removed
"""

# KEYS: holds, slots... ARGV: hold member, held nano, charge, hold's generation.
_REAP = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'gen') == ARGV[4] then
    redis.call('HINCRBY', KEYS[i], 'held', -tonumber(ARGV[2]))
    redis.call('HINCRBY', KEYS[i], 'spent', tonumber(ARGV[3]))
  end
end
return 1
"""


def _suffix(slot: Slot) -> str:
    kind, owner, start = slot
    return f"{kind}:{owner}:{start.strftime('%Y%m%d')}"


class RedisLedger(Ledger):
    """Budgets in Redis: exact across every gateway process, rebuilt from the database
    when Redis has lost them."""

    store = "redis"

    def __init__(self, db: Database, redis: Redis, prefix: str, instance: str) -> None:
        self._db = db
        self._redis = redis
        self._prefix = prefix
        self.instance = instance
        self._generation_key = f"{prefix}budget-generation"
        self._holds_key = f"{prefix}budget-holds"
        self._reserve: Any = redis.register_script(_RESERVE)
        self._rebuild: Any = redis.register_script(_REBUILD)
        self._settle: Any = redis.register_script(_SETTLE)
        self._reap: Any = redis.register_script(_REAP)
        self._generation_only: Any = redis.register_script(_GENERATION + "\nreturn gen")

    def _key(self, suffix: str) -> str:
        return f"{self._prefix}budget:{suffix}"

    def _member(self, reservation: Reservation) -> str:
        suffixes = "|".join(_suffix(slot) for slot in reservation.slots)
        return (
            f"{self.instance}|{reservation.request_id}|{reservation.nano}|{suffixes}"
            f"|{reservation.generation}"
        )

    async def _rebuild_slot(self, slot: Slot, generation: str) -> None:
        """Seed ``slot`` from the database for ``generation`` (after the horizon)."""
        began = int(generation.rsplit(":", 1)[1]) / 1000
        wait = began + REBUILD_HORIZON - time.time()
        if wait > 0:
            await asyncio.sleep(min(wait, REBUILD_HORIZON))
        key = self._key(_suffix(slot))
        late = [_text(rid) for rid in await self._redis.hkeys(key + ":late")]
        counted = await recorded_costs(self._db, late)
        spent = await spent_in_db(self._db, *slot)
        ttl = _SLOT_TTL_SECONDS if slot[2].year > 1970 else 0
        await self._rebuild(
            keys=[self._generation_key, key, key + ":late"],
            args=[generation, spent, ttl, *counted],
        )

    async def reserve(self, budgets: list[Budget], amount: Decimal, request_id: str) -> Reservation:
        """Hold ``amount`` on every budget atomically, or raise PaymentRequired."""
        wanted = to_nano(amount)
        refuse_early(budgets, wanted)
        now = time.time()
        slots = [budget.slot(datetime.fromtimestamp(now, UTC)) for budget in budgets]
        keys = [self._key(_suffix(slot)) for slot in slots]
        limits = [to_nano(budget.limit_usd) for budget in budgets]
        reservation = Reservation(slots, wanted, request_id)
        member = "|".join(
            [self.instance, request_id, str(wanted), *(_suffix(slot) for slot in slots)]
        )
        for _ in range(2 * len(slots) + 2):
            result, generation = await self._reserve(
                keys=[self._generation_key, self._holds_key, *keys],
                args=[secrets.token_hex(8), wanted, member, lease_end(now), *limits],
            )
            generation = _text(generation)
            index = int(result)
            if index == 0:
                reservation.generation = generation
                return reservation
            if index < 0:
                await self._rebuild_slot(slots[-index - 1], generation)
                continue
            values = await self._redis.hmget(keys[index - 1], ["spent", "held"])
            used = sum(int(value or 0) for value in values)
            raise exhausted(budgets[index - 1], used, wanted)
        raise RuntimeError("budget slots kept changing generation while being rebuilt")

    async def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the hold with the actual cost."""
        if reservation.settled:
            return
        keys = [self._key(_suffix(slot)) for slot in reservation.slots]
        await self._settle(
            keys=[self._holds_key, *keys],
            args=[
                self._member(reservation),
                reservation.nano,
                to_nano(actual),
                reservation.generation or "",
                _LATE_TTL_SECONDS,
                reservation.request_id,
            ],
        )
        reservation.settled = True

    async def spent(self, budget: Budget) -> Decimal:
        """Spend recorded or held in the budget's current period."""
        slot = budget.slot(datetime.now(UTC))
        key = self._key(_suffix(slot))
        generation = _text(
            await self._generation_only(keys=[self._generation_key], args=[secrets.token_hex(8)])
        )
        if _text(await self._redis.hget(key, "gen")) != generation:
            await self._rebuild_slot(slot, generation)
        values = await self._redis.hmget(key, ["spent", "held"])
        return Decimal(sum(int(value or 0) for value in values)) / NANO

    async def keep(self, reservations: list[Reservation]) -> None:
        """Renew the lease of this process's holds (only ones still in the set)."""
        if not reservations:
            return
        end = lease_end()
        mapping = {self._member(r): end for r in reservations if r.generation is not None}
        if mapping:
            await self._redis.zadd(self._holds_key, mapping, xx=True)

    async def reap(self, instance: str | None = None) -> int:
        """Reclaim a dead instance's holds (at their recorded cost when the call has a
        record), or expired ones (at their full amount)."""
        if instance is not None:
            members = [
                _text(m)
                for m in await self._redis.zrange(self._holds_key, 0, -1)
                if _text(m).startswith(instance + "|")
            ]
        else:
            members = [
                _text(m)
                for m in await self._redis.zrangebyscore(
                    self._holds_key, "-inf", int(time.time()), start=0, num=_REAP_BATCH
                )
            ]
        parsed = [member.split("|") for member in members]
        costs: dict[str, int] = {}
        if instance is not None:
            costs = await recorded_costs(self._db, [parts[1] for parts in parsed])
        reaped = 0
        for member, parts in zip(members, parsed, strict=True):
            if len(parts) < 5:
                await self._redis.zrem(self._holds_key, member)
                continue
            request_id, nano, generation = parts[1], int(parts[2]), parts[-1]
            keys = [self._key(suffix) for suffix in parts[3:-1]]
            charge = costs.get(request_id, nano)
            reaped += int(
                await self._reap(
                    keys=[self._holds_key, *keys], args=[member, nano, charge, generation]
                )
            )
        return reaped


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
