"""Kill-switch rows: the proxy, a provider, a deployment. No row means on.

A switch's name is ``proxy``, ``provider:<name>`` or ``deployment:<provider>/<model>``
(the model as configured: an upstream id, or a glob for a pattern model).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.epoch import SWITCHES_EPOCH, bump
from tollway.store.ids import utcnow
from tollway.store.tables import Switch

PROXY = "proxy"
PROVIDER_PREFIX = "provider:"
DEPLOYMENT_PREFIX = "deployment:"


def provider_switch(name: str) -> str:
    """The switch name of a provider."""
    return PROVIDER_PREFIX + name


def deployment_switch(label: str) -> str:
    """The switch name of a deployment, from its ``provider/model`` label."""
    return DEPLOYMENT_PREFIX + label


@dataclass(frozen=True, slots=True)
class SwitchState:
    """One switch as last set: on or off, by whom, when."""

    name: str
    enabled: bool
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """A switch that a request moved: what it was and what it is now."""

    name: str
    before: bool
    after: bool


async def states(session: AsyncSession) -> dict[str, SwitchState]:
    """Every switch ever set, by name."""
    rows = (await session.scalars(select(Switch))).all()
    return {
        row.name: SwitchState(row.name, row.enabled, row.changed_by, _utc(row.changed_at))
        for row in rows
    }


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp Tollway writes is UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


async def apply(session: AsyncSession, wanted: dict[str, bool], actor: str) -> list[Change]:
    """Set switches inside the caller's transaction; returns those that moved."""
    # The epoch first: its row lock queues concurrent changes (any database, any host),
    # so each one reads the state the previous one committed and its before/after hold.
    await bump(session, SWITCHES_EPOCH)
    current = {
        row.name: row
        for row in (await session.scalars(select(Switch).where(Switch.name.in_(wanted)))).all()
    }
    now, changes = utcnow(), []
    for name, enabled in wanted.items():
        row = current.get(name)
        before = row.enabled if row is not None else True
        if before == enabled:
            continue
        if row is None:
            session.add(Switch(name=name, enabled=enabled, changed_by=actor, changed_at=now))
        else:
            row.enabled, row.changed_by, row.changed_at = enabled, actor, now
        changes.append(Change(name, before, enabled))
    await session.flush()
    return changes
