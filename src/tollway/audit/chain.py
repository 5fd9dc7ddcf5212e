"""An append-only log where each entry is chained to the previous one by a keyed hash.

``hash_n = HMAC(audit_key, canonical(entry_n) || hash_{n-1})``. Editing, deleting or
reordering any entry breaks every hash after it, and the head row pins the newest one,
so truncating the tail is caught too. Without the server secret the chain cannot be
re-forged after an edit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.tables import AuditEntry, AuditHead

GENESIS = "0" * 64
_BATCH = 1000


def _utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp Tollway writes is UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def entry_hash(key: bytes, entry: AuditEntry, prev_hash: str) -> str:
    """The keyed hash of one entry, chained to its predecessor."""
    canonical = orjson.dumps(
        {
            "seq": entry.seq,
            "ts": _utc(entry.ts).isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "action": entry.action,
            "target_type": entry.target_type,
            "target_id": entry.target_id,
            "details": entry.details,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hmac.new(key, canonical + prev_hash.encode(), hashlib.sha256).hexdigest()


async def append(
    session: AsyncSession,
    key: bytes,
    *,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry inside the caller's transaction (so it commits with the change)."""
    # Updating the head first takes the write lock at once: concurrent appends from any
    # process or host queue here instead of forking the chain.
    row = (
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.hash)
        )
    ).one()
    seq, prev_hash = int(row[0]), str(row[1])
    entry = AuditEntry(
        seq=seq,
        ts=datetime.now(UTC),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=orjson.loads(orjson.dumps(details or {}, default=str)),
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(key, entry, prev_hash)
    session.add(entry)
    await session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=entry.hash))
    return entry


@dataclass(frozen=True)
class Verification:
    """The result of checking the whole chain."""

    ok: bool
    entries: int
    broken_at: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


async def verify(session: AsyncSession, key: bytes) -> Verification:
    """Recompute every link from the first entry to the head."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        batch: Sequence[AuditEntry] = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last_seq)
                .order_by(AuditEntry.seq)
                .limit(_BATCH)
            )
        ).all()
        if not batch:
            break
        for entry in batch:
            if entry.seq != expected_seq:
                return Verification(False, count, expected_seq, "entry missing from the chain")
            if entry.prev_hash != prev_hash:
                return Verification(False, count, entry.seq, "link to previous entry broken")
            if not hmac.compare_digest(entry_hash(key, entry, prev_hash), entry.hash):
                return Verification(False, count, entry.seq, "entry content does not match")
            prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
            last_seq = entry.seq
    head = (await session.execute(select(AuditHead.seq, AuditHead.hash))).one()
    if int(head[0]) != count or head[1] != prev_hash:
        return Verification(False, count, count + 1, "entries after this point were removed")
    return Verification(True, count)


def filtered(
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEntry]:
    """A query for entries matching the given filters, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target_id == target)
    if since:
        query = query.where(AuditEntry.ts >= since)
    if until:
        query = query.where(AuditEntry.ts < until)
    return query
