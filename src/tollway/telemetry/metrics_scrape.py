"""Values a scrape reads from the stores, for every process at once, and how a scrape
turns everything into the Prometheus text format.

    tollway_budget_limit_usd{project}     a project's budget for its current period
    tollway_budget_spent_usd{project}     spend recorded in the database in that period
                                          (from the spend rollups, which retention keeps)
    tollway_budget_held_usd{project}      what calls in flight hold on it (the ledger:
                                          ``budget_holds`` rows, or the Redis slot)
    tollway_spend_quarantined{store}      spend records the database refused, kept in
                                          its quarantine table or, failing that, a file

Projects with a budget, at most ``metrics.max_projects`` of them (by name). Reads are
cached for ``metrics.cache_seconds`` and bounded in time, so that however often and
however many scrapers call, the database sees a few small queries per period; when a
store fails, the last values are shown again and the failure is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.metering.budget import NANO, period_start
from tollway.metering.quarantine import Quarantine
from tollway.store.db import Database
from tollway.store.spend import PICO, report, to_pico
from tollway.store.tables import BudgetHold, Project, QuarantinedSpend

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollway.telemetry")
READ_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ProjectBudget:
    """One project's budget as a scrape shows it (USD)."""

    project: str
    limit: float
    spent: float
    held: float


class ScrapeValues:
    """Budgets and quarantine, read at most once per ``cache_seconds`` (a collector)."""

    def __init__(
        self,
        db: Database,
        quarantine: Quarantine,
        redis: Redis | None,
        redis_prefix: str,
        max_projects: int,
        cache_seconds: float,
        store_errors: Counter,
    ) -> None:
        self._db = db
        self._quarantine = quarantine
        self._redis = redis
        self._prefix = redis_prefix
        self._max_projects = max_projects
        self._cache_seconds = cache_seconds
        self._errors = store_errors
        self._lock = asyncio.Lock()
        self._fresh_until = float("-inf")
        self._store = "database"  # the store being read (named when it fails)
        self.budgets: list[ProjectBudget] = []
        self.quarantined: dict[str, int] = {}

    async def refresh(self) -> None:
        """Read the stores again if the last read is older than ``cache_seconds``."""
        if time.monotonic() < self._fresh_until:
            return
        async with self._lock:  # concurrent scrapes share one read
            if time.monotonic() < self._fresh_until:
                return
            try:
                async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                    await self._read()
            except Exception:  # the edge: a scrape shows the last values and counts this
                log.warning("reading metrics from the %s failed", self._store, exc_info=True)
                self._errors.labels(self._store, "metrics_scrape").inc()
            finally:
                self._fresh_until = time.monotonic() + self._cache_seconds

    async def _read(self) -> None:
        self._store = "database"
        async with self._db.reader() as session:
            rows = await self._budgeted(session)
            spent = await self._spent(session, rows)
            held = await self._held_in_db(session, rows) if self._redis is None else {}
            quarantined = await session.scalar(select(func.count()).select_from(QuarantinedSpend))
        if self._redis is not None:
            self._store = "redis"
            held = await self._held_in_redis(rows)
        self.budgets = [
            ProjectBudget(
                name,
                float(limit),
                spent.get(project_id, 0) / float(PICO),
                held.get(project_id, 0) / float(NANO),
            )
            for project_id, name, limit, _ in rows
        ]
        self.quarantined = {
            "database": int(quarantined or 0),
            "file": self._quarantine.file_entries(),
        }

    async def _budgeted(self, session: AsyncSession) -> list[Any]:
        if self._max_projects == 0:
            return []
        query = (
            select(Project.id, Project.name, Project.max_budget_usd, Project.budget_period)
            .where(Project.max_budget_usd.is_not(None))
            .order_by(Project.name)
            .limit(self._max_projects)
        )
        return list((await session.execute(query)).all())

    @staticmethod
    async def _spent(session: AsyncSession, rows: list[Any]) -> dict[str, int]:
        """Pico-dollars recorded per project since its period began: from the rollups'
        daily and hourly cells (a month is about 30 cells a project, not every call),
        as budgets are; one report per kind of period."""
        periods: dict[str | None, set[str]] = {}
        for project_id, _, _, period in rows:
            periods.setdefault(period, set()).add(project_id)
        now = datetime.now(UTC)
        spent: dict[str, int] = {}
        for period, ids in periods.items():
            groups, _ = await report(session, group_by="project", since=period_start(period, now))
            spent.update({g["group"]: to_pico(g["cost_usd"]) for g in groups if g["group"] in ids})
        return spent

    @staticmethod
    async def _held_in_db(session: AsyncSession, rows: list[Any]) -> dict[str, int]:
        """Nano-dollars held per project by calls in flight (SQLite and SQL ledgers)."""
        if not rows:
            return {}
        result = await session.execute(
            select(BudgetHold.owner_id, func.sum(BudgetHold.nano))
            .where(BudgetHold.kind == "project", BudgetHold.owner_id.in_([r[0] for r in rows]))
            .group_by(BudgetHold.owner_id)
        )
        return {owner: int(total or 0) for owner, total in result}

    async def _held_in_redis(self, rows: list[Any]) -> dict[str, int]:
        """Nano-dollars held per project in the Redis ledger's slot of the current period
        (``budget:<kind>:<owner>:<YYYYMMDD>``, see metering/redis_ledger.py), in one
        round trip."""
        if not rows or self._redis is None:
            return {}
        now = datetime.now(UTC)
        pipe = self._redis.pipeline(transaction=False)
        for project_id, _, _, period in rows:
            day = period_start(period, now).strftime("%Y%m%d")
            pipe.hget(f"{self._prefix}budget:project:{project_id}:{day}", "held")
        answers = await pipe.execute()
        return {row[0]: int(value or 0) for row, value in zip(rows, answers, strict=True)}

    def collect(self) -> Iterator[Metric]:
        """The last values read, as metric families."""
        families = {
            "limit": GaugeMetricFamily(
                "tollway_budget_limit_usd",
                "A project's budget for its current period.",
                labels=["project"],
            ),
            "spent": GaugeMetricFamily(
                "tollway_budget_spent_usd",
                "Spend recorded in the database in the project's current budget period.",
                labels=["project"],
            ),
            "held": GaugeMetricFamily(
                "tollway_budget_held_usd",
                "Budget held by calls in flight (their worst case, until they settle).",
                labels=["project"],
            ),
        }
        for budget in self.budgets:
            families["limit"].add_metric([budget.project], budget.limit)
            families["spent"].add_metric([budget.project], budget.spent)
            families["held"].add_metric([budget.project], budget.held)
        quarantined = GaugeMetricFamily(
            "tollway_spend_quarantined",
            "Spend records the database refused, kept aside (store: database or file).",
            labels=["store"],
        )
        for store, count in self.quarantined.items():
            quarantined.add_metric([store], count)
        yield from (*families.values(), quarantined)


class Exposition:
    """Renders ``registry`` (this process's values, or every worker's files) plus the
    scrape-time values, in the format the scraper asked for."""

    def __init__(self, registry: CollectorRegistry, scrape: ScrapeValues) -> None:
        self._registry = registry
        self._scrape = scrape
        registry.register(scrape)
        # Called first at every scrape (the observer writes what this process counted).
        self.before_scrape: Callable[[], None] = _nothing

    async def render(self, accept: str | None) -> tuple[bytes, str]:
        """The body and its content type. Reading the files and formatting run in a
        thread: a scrape must not hold up the calls this process is serving."""
        self.before_scrape()
        await self._scrape.refresh()
        encoder, content_type = choose_encoder(accept or "")
        body = await asyncio.to_thread(encoder, self._registry)
        return body, content_type


def _nothing() -> None:
    """No work."""
