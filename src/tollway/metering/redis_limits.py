"""Rate limits shared across processes and hosts, by the same sliding-window arithmetic
as ``limits.Limiter``, checked and counted in one Lua script."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from tollway.metering.limits import WINDOW, Limits, Ticket, limit_headers, refusal

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Per scope, 5 KEYS: requests now, requests previous minute, tokens now, tokens previous
# minute, parallel. ARGV: weight of the previous minute, then rpm, tpm, parallel per scope
# (-1 = unlimited). Returns {0, req, tok} for the first scope, or {i, what, req, tok}.
_ACQUIRE = """
local weight = tonumber(ARGV[1])
local n = #KEYS / 5
local first_req, first_tok = 0, 0
for i = 1, n do
  local b = (i - 1) * 5
  local req = tonumber(redis.call('GET', KEYS[b + 1]) or '0')
            + tonumber(redis.call('GET', KEYS[b + 2]) or '0') * weight
  local tok = tonumber(redis.call('GET', KEYS[b + 3]) or '0')
            + tonumber(redis.call('GET', KEYS[b + 4]) or '0') * weight
  local par = tonumber(redis.call('GET', KEYS[b + 5]) or '0')
  local rpm = tonumber(ARGV[(i - 1) * 3 + 2])
  local tpm = tonumber(ARGV[(i - 1) * 3 + 3])
  local maxpar = tonumber(ARGV[(i - 1) * 3 + 4])
  if i == 1 then first_req, first_tok = req, tok end
  if rpm >= 0 and req + 1 > rpm then return {i, 'rpm', tostring(req), tostring(tok)} end
  if tpm >= 0 and tok >= tpm then return {i, 'tpm', tostring(req), tostring(tok)} end
  if maxpar >= 0 and par >= maxpar then return {i, 'parallel', tostring(req), tostring(tok)} end
end
for i = 1, n do
  local b = (i - 1) * 5
  redis.call('INCR', KEYS[b + 1])
  redis.call('EXPIRE', KEYS[b + 1], 130)
  redis.call('INCR', KEYS[b + 5])
  redis.call('EXPIRE', KEYS[b + 5], 600)
end
return {0, 'ok', tostring(first_req), tostring(first_tok)}
"""

# KEYS: per scope, tokens-now then parallel. ARGV: tokens.
_RELEASE = """
for i = 1, #KEYS, 2 do
  if tonumber(ARGV[1]) > 0 then
    redis.call('INCRBY', KEYS[i], ARGV[1])
    redis.call('EXPIRE', KEYS[i], 130)
  end
  if tonumber(redis.call('GET', KEYS[i + 1]) or '0') > 0 then
    redis.call('DECR', KEYS[i + 1])
  end
end
return 0
"""


def _arg(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    """Admission against rate limits kept in Redis."""

    store = "redis"

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._prefix = prefix
        self._acquire: Any = redis.register_script(_ACQUIRE)
        self._release: Any = redis.register_script(_RELEASE)

    def _keys(self, scope: str, minute: int) -> list[str]:
        base = f"{self._prefix}rl:{scope}"
        return [
            f"{base}:req:{minute}",
            f"{base}:req:{minute - 1}",
            f"{base}:tok:{minute}",
            f"{base}:tok:{minute - 1}",
            f"{base}:par",
        ]

    async def acquire(self, scopes: list[Limits]) -> Ticket:
        """Admit one request against every scope, or raise RateLimited."""
        now = time.time()
        minute = int(now // WINDOW)
        elapsed = now - minute * WINDOW
        keys = [key for limits in scopes for key in self._keys(limits.scope, minute)]
        args: list[float] = [1 - elapsed / WINDOW]
        for limits in scopes:
            args += [_arg(limits.rpm), _arg(limits.tpm), _arg(limits.max_parallel)]
        index, what, req, tok = await self._acquire(keys=keys, args=args)
        index = int(index)
        used_req, used_tok = float(req), float(tok)
        if index == 0:
            return Ticket(scopes, limit_headers(scopes[0], used_req + 1, used_tok))
        limits = scopes[index - 1]
        headers = limit_headers(scopes[0], used_req + 1, used_tok)
        what = what.decode() if isinstance(what, bytes) else str(what)
        if what == "parallel":
            raise refusal(limits, f"limit of {limits.max_parallel} parallel requests", 1, headers)
        wait = WINDOW - elapsed
        label = f"limit of {limits.rpm} requests per minute"
        if what == "tpm":
            label = f"limit of {limits.tpm} tokens per minute"
        raise refusal(limits, label, math.ceil(wait), headers)

    async def release(self, ticket: Ticket, tokens: int) -> None:
        """End the request: free its parallel slot and count its tokens."""
        if ticket.released:
            return
        ticket.released = True
        minute = int(time.time() // WINDOW)
        keys: list[str] = []
        for limits in ticket.scopes:
            scope_keys = self._keys(limits.scope, minute)
            keys += [scope_keys[2], scope_keys[4]]
        await self._release(keys=keys, args=[tokens])
