"""``key.expired``: a periodic scan for keys whose lifetime ran out since the last scan.

The scan remembers how far it got (``<data_dir>/events/key-expiry``, an ISO time)
and holds an ``flock`` on that file while it runs, so the processes sharing a data dir
take turns and each expiry is emitted once per data dir. The first scan of a data dir
only starts the clock (keys that expired before events were turned on are not
reported). A key revoked before it expired is not reported. The id is derived from the
key and its expiry time: other hosts' scans emit the same id for the same expiry, and a
crash between emitting and saving the position emits it again under the same id.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from tollway.events.envelope import KEY_EXPIRED, event_id
from tollway.events.thresholds import Emit
from tollway.store.db import Database
from tollway.store.ids import as_utc
from tollway.store.tables import VirtualKey

log = logging.getLogger("tollway.events")
STATE_FILE = Path("events") / "key-expiry"


class KeyExpiry:
    """Emits ``key.expired`` for keys that expired since the previous scan."""

    def __init__(self, db: Database, data_dir: Path, interval: float, emit: Emit) -> None:
        self._db = db
        self._path = data_dir / STATE_FILE
        self._interval = interval
        self._emit = emit

    async def run(self) -> None:
        """Scan now and every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.scan()
            except Exception:  # the edge: a background task; the next scan catches up
                log.warning("scanning for expired keys failed; will retry", exc_info=True)
                self._db.failures.report("database", "key_expiry")
            await asyncio.sleep(self._interval)

    async def scan(self) -> int:
        """Emit the expiries since the last scan; returns how many (0 when another
        process on this data dir is scanning)."""
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            since = _parse(os.pread(fd, 64, 0))
            now = datetime.now(UTC)
            found = 0 if since is None else await self._emit_since(since, now)
            text = now.isoformat().encode()
            os.pwrite(fd, text.ljust(64), 0)
            return found
        finally:
            os.close(fd)  # releases the flock

    async def _emit_since(self, since: datetime, now: datetime) -> int:
        async with self._db.reader() as session:
            rows = (
                await session.execute(
                    select(
                        VirtualKey.id,
                        VirtualKey.name,
                        VirtualKey.project_id,
                        VirtualKey.expires_at,
                        VirtualKey.metadata_,
                    )
                    .where(
                        VirtualKey.expires_at > since,
                        VirtualKey.expires_at <= now,
                        or_(
                            VirtualKey.revoked_at.is_(None),
                            VirtualKey.revoked_at > VirtualKey.expires_at,
                        ),
                    )
                    .order_by(VirtualKey.expires_at)
                )
            ).all()
        for key_id, name, project_id, expires_at, metadata in rows:
            expires = as_utc(expires_at)
            assert expires is not None
            data: dict[str, Any] = {
                "key_id": key_id,
                "name": name,
                "project_id": project_id,
                "expires_at": expires.isoformat(),
                "metadata": metadata or {},
            }
            self._emit(KEY_EXPIRED, data, event_id(KEY_EXPIRED, key_id, expires.isoformat()))
        return len(rows)


def _parse(text: bytes) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip(b"\0 \n").decode())
    except ValueError:
        return None
