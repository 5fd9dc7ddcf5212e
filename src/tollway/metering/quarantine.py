"""Where a spend record the database refuses goes: never lost, never blocking the rest.

The ``spend_quarantine`` table keeps the whole record as JSON text (a text column, so a
NUL or an absurd number inside it is just escaped text) with the reason. If even that
insert fails, the record is appended to ``<data_dir>/quarantine.jsonl``. Either way a
warning names the request, a ``record.quarantined`` event goes to the ``listener``
(the event export), and ``GET /api/v1/spend/quarantine`` and ``tollway spend
quarantine`` list what is there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, insert, select

from tollway.store.db import Database
from tollway.store.tables import QuarantinedSpend

log = logging.getLogger("tollway.metering")
QUARANTINE_FILE = "quarantine.jsonl"
_REASON_CHARS = 500


def _json(record: dict[str, Any]) -> str:
    return orjson.dumps(record, default=str).decode()


class Quarantine:
    """Dead letters for spend records."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self._db = db
        self._file = data_dir / QUARANTINE_FILE
        self.listener: Callable[[dict[str, Any], str], None] | None = None

    async def put(self, record: dict[str, Any], reason: str) -> None:
        """Keep ``record`` aside with ``reason``; never raises."""
        reason = reason.replace("\x00", "")[:_REASON_CHARS]
        request_id = str(record.get("request_id") or "").replace("\x00", "")[:64] or None
        log.warning(
            "spend record quarantined",
            extra={"fields": {"request_id": request_id, "reason": reason}},
        )
        if self.listener is not None:
            try:
                self.listener(record, reason)
            except Exception:  # the edge: telling others never stops keeping the record
                log.exception("the quarantine listener failed")
        try:
            async with self._db.transaction() as session:
                await session.execute(
                    insert(QuarantinedSpend).values(
                        request_id=request_id,
                        created_at=datetime.now(UTC),
                        reason=reason,
                        record=_json(record),
                    )
                )
        except Exception:  # the edge: the file below keeps it
            log.exception("quarantine table refused a record; writing it to a file")
            self._append(record, reason)

    def _append(self, record: dict[str, Any], reason: str) -> None:
        line = orjson.dumps({"reason": reason, "record": _json(record)}) + b"\n"
        fd = os.open(self._file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    async def list(self, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """How many records are quarantined in the table, and the newest ``limit``."""
        async with self._db.reader() as session:
            total = await session.scalar(select(func.count()).select_from(QuarantinedSpend))
            rows = (
                await session.execute(
                    select(QuarantinedSpend).order_by(QuarantinedSpend.id.desc()).limit(limit)
                )
            ).scalars()
            entries = [
                {
                    "id": row.id,
                    "request_id": row.request_id,
                    "created_at": row.created_at,
                    "reason": row.reason,
                    "record": row.record,
                }
                for row in rows
            ]
        return int(total or 0), entries

    def file_entries(self) -> int:
        """Records written to the fallback file (0 when there is none)."""
        try:
            with self._file.open("rb") as handle:
                return sum(1 for _ in handle)
        except FileNotFoundError:
            return 0
