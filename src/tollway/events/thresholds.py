"""``budget.threshold``: a key's or project's spend in its budget period reached one of
the configured percentages (default 50, 80, 100), once per budget, period and limit.

A finished call with a cost marks its key's and project's budgets due; a background
task (after a short pause, so a burst of calls is checked once) flushes the spend
records to the database and sums the due budgets' periods there (the sum budgets are
seeded from; when it is worth a query: ``BudgetThresholds``). A threshold reached
emits its event, then leaves a marker file
(``<data_dir>/events/thresholds/<period>.<event id>``) so it is not emitted again, by
this process or one started later. The id is derived from the budget, its period, its
limit and the percentage: processes on other hosts (another data dir) that see the
same crossing emit the same id. Raising a budget's limit makes its thresholds new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tollway.events.envelope import BUDGET_THRESHOLD, event_id
from tollway.metering.budget import NANO, Budget, period_start, spent_in_db, to_nano
from tollway.store.db import Database

if TYPE_CHECKING:
    from tollway.auth.directory import KeyEntry

log = logging.getLogger("tollway.events")
THRESHOLDS_DIR = Path("events") / "thresholds"
SETTLE_SECONDS = 0.2
RETRY_SECONDS = 5.0
RESUM_SECONDS = 30.0
FORGET_ABOVE = 10_000  # budgets remembered before idle ones are forgotten
KEEP_DAYS = 62  # markers of day and month periods older than this are deleted
_LIFETIME = "1970-01-01"

Emit = Callable[[str, dict[str, Any], str], None]


def budgets_of(key: KeyEntry) -> list[Budget]:
    """The budgets a key's calls count against: its own and its project's."""
    budgets = []
    for kind, owner, limits in (
        ("key", key.id, key.limits),
        ("project", key.project_id, key.project_limits),
    ):
        if limits.get("max_budget_usd") is not None:
            budgets.append(Budget(kind, owner, limits["max_budget_usd"], limits["budget_period"]))
    return budgets


@dataclass(frozen=True, slots=True)
class _Seen:
    """A budget's period as last summed from the database."""

    period: str
    limit: int  # nano-dollars
    spent: int  # nano-dollars in the database at the sum
    at: float  # monotonic time of the sum

    def worth_summing(self, percents: list[Decimal], since: int, now: float) -> bool:
        """Whether this process's spend ``since`` the sum may have crossed the next
        threshold, or the sum is old enough that other processes' spend may have."""
        if now - self.at >= RESUM_SECONDS:
            return True
        following = [p for p in percents if self.spent * 100 < p * self.limit]
        return bool(following) and (self.spent + since) * 100 >= following[0] * self.limit


class BudgetThresholds:
    """Watches the budgets of keys that spend, and emits each threshold once.

    A budget's period is summed in the database (after the spend records are flushed)
    only when this process's own spend may have crossed the next threshold, or its last
    sum is ``RESUM_SECONDS`` old: busy budgets cost a query now and then, not one per
    call. A crossing is never reported early (it is confirmed by the sum); one caused
    by other processes' calls may be reported up to ``RESUM_SECONDS`` late."""

    def __init__(
        self,
        db: Database,
        flush: Callable[[], Awaitable[bool]],
        percents: list[float],
        emit: Emit,
        data_dir: Path,
    ) -> None:
        self._db = db
        self._flush = flush
        self._percents = [Decimal(str(percent)) for percent in sorted(percents)]
        self._emit = emit
        self._dir = data_dir / THRESHOLDS_DIR
        self._due: dict[tuple[str, str], Budget] = {}
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._since: dict[tuple[str, str], int] = {}  # this process's spend since each sum
        self._wake = asyncio.Event()

    def observe(self, key: KeyEntry, cost: Decimal) -> None:
        """A call of ``key`` cost ``cost``: look at its budgets soon."""
        nano = to_nano(cost)
        for budget in budgets_of(key):
            slot = (budget.kind, budget.owner_id)
            self._since[slot] = self._since.get(slot, 0) + nano
            self._due[slot] = budget
        if self._due:
            self._wake.set()

    async def run(self) -> None:
        """Check due budgets until cancelled."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prune()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(SETTLE_SECONDS)
            if not await self.check():
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def check(self, flush: bool = True) -> bool:
        """Sum the due budgets worth summing (with ``flush``, writing the spend records
        journaled so far first) and emit what they crossed; False (they stay due) when
        the database is not reachable or not up to date."""
        due, self._due = self._due, {}
        now = time.monotonic()
        wanted = {slot: budget for slot, budget in due.items() if self._worth(budget, now)}
        if not wanted:
            return True
        try:
            if flush and not await self._flush():
                raise ConnectionError("spend records are not in the database yet")
            for slot, budget in wanted.items():
                await self._check(budget)
                del due[slot]
        except Exception:  # the edge: a background task; checked again later
            log.warning("checking budget thresholds failed; will retry", exc_info=True)
            self._due = {**due, **self._due}
            return False
        self._forget(now)
        return True

    def _worth(self, budget: Budget, now: float) -> bool:
        slot = (budget.kind, budget.owner_id)
        seen = self._seen.get(slot)
        period = _period(budget)[1]
        if seen is None or seen.period != period or seen.limit != to_nano(budget.limit_usd):
            return True
        return seen.worth_summing(self._percents, self._since.get(slot, 0), now)

    def _forget(self, now: float) -> None:
        """Drop what is known of budgets that have not spent for a while."""
        if len(self._seen) > FORGET_ABOVE:
            self._seen = {k: v for k, v in self._seen.items() if now - v.at < RESUM_SECONDS}
            self._since = {k: v for k, v in self._since.items() if k in self._seen}

    async def _check(self, budget: Budget) -> None:
        limit = to_nano(budget.limit_usd)
        start, period = _period(budget)
        slot = (budget.kind, budget.owner_id)
        before = self._since.get(slot, 0)
        spent = await spent_in_db(self._db, budget.kind, budget.owner_id, start)
        # Calls that ended during the sum may be in it or not: kept as spent since, they
        # can only make the next sum come sooner.
        self._since[slot] = self._since.get(slot, 0) - before
        self._seen[slot] = _Seen(period, limit, spent, time.monotonic())
        if limit <= 0:
            return
        limit_text = format(budget.limit_usd.normalize(), "f")
        for percent in self._percents:
            if spent * 100 < percent * limit:
                return
            percent_text = format(percent.normalize(), "f")
            id_ = event_id(
                BUDGET_THRESHOLD, budget.kind, budget.owner_id, period, limit_text, percent_text
            )
            marker = self._dir / f"{period}.{id_}"
            if marker.exists():
                continue
            data = {
                "scope": budget.kind,
                f"{budget.kind}_id": budget.owner_id,
                "threshold_percent": float(percent),
                "max_budget_usd": limit_text,
                "spent_usd": format((Decimal(spent) / NANO).normalize(), "f"),
                "budget_period": budget.period,
                "period_start": start.isoformat(),
            }
            # Emitted first, marked second: a crash in between emits it again (same id).
            self._emit(BUDGET_THRESHOLD, data, id_)
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))

    def _prune(self) -> None:
        """Delete markers of day and month periods long over."""
        oldest = (datetime.now(UTC) - timedelta(days=KEEP_DAYS)).strftime("%Y-%m-%d")
        for marker in self._dir.iterdir():
            period = marker.name.split(".", 1)[0]
            if period != _LIFETIME and period < oldest:
                with contextlib.suppress(OSError):
                    marker.unlink()


def _period(budget: Budget) -> tuple[datetime, str]:
    """The start of the budget's current period, and its ``YYYY-MM-DD``."""
    start = period_start(budget.period, datetime.now(UTC))
    return start, start.strftime("%Y-%m-%d")
