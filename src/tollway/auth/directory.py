"""Virtual key verification on the hot path: cached, yet revocation-exact.

Every request reads the keys epoch (microseconds on SQLite) and drops the whole cache
when it moved, so a revoke, expiry change or project deactivation committed by any
process takes effect on the very next request everywhere. Between changes, a known key
costs one HMAC and one dict lookup.

When the database cannot be reached, keys verified before keep working for
``database_grace`` seconds after the last epoch read that succeeded (their calls' spend
keeps journaling locally and lands when the database returns); past that, and for keys
not seen before, calls get 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tollway.audit.chain import append
from tollway.auth.credentials import Principal, presented_key
from tollway.auth.secrets import ServerKeys
from tollway.errors import Forbidden, ServiceUnavailable, Unauthorized
from tollway.store import keys as key_store
from tollway.store import projects as project_store
from tollway.store.db import Database
from tollway.store.ids import VIRTUAL_KEY_PREFIX, as_utc

log = logging.getLogger("tollway.auth")
_CACHE_LIMIT = 50_000
_UNKNOWN = object()


@dataclass(slots=True)
class KeyEntry:
    """What the hot path needs to know about a key, frozen at load time."""

    id: str
    name: str
    project_id: str
    project_name: str
    usable: bool
    reason: str
    expires_at: float | None
    models: tuple[str, ...] | None
    max_requests: int | None
    metadata: dict[str, Any]
    credentials: dict[str, str]
    limits: dict[str, Any]
    project_limits: dict[str, Any]
    _allowed: dict[str, bool] = field(default_factory=dict)

    def allows(self, model: str) -> bool:
        """Whether ``model`` matches one of the key's model names or globs."""
        if self.models is None:
            return True
        verdict = self._allowed.get(model)
        if verdict is None:
            verdict = any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)
            self._allowed[model] = verdict
        return verdict


class KeyDirectory:
    """Resolves presented keys to principals."""

    def __init__(
        self, db: Database, server_keys: ServerKeys, master_key: str, grace: float = 30.0
    ) -> None:
        self._db = db
        self._keys = server_keys
        self._master = master_key.encode()
        self._cache: dict[str, KeyEntry | object] = {}
        self._epoch = -1
        self._grace = grace
        self._fresh_until = 0.0  # monotonic: the cache may be trusted until then
        self._background: set[asyncio.Task[None]] = set()

    async def authenticate(self, headers: dict[str, str]) -> Principal:
        """The caller behind the request's key, or Unauthorized / Forbidden."""
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(
                "No API key provided. Send it as 'Authorization: Bearer <key>' or 'x-api-key'."
            )
        if hmac.compare_digest(key.encode(), self._master):
            return Principal(kind="master")
        if not key.startswith(VIRTUAL_KEY_PREFIX):
            raise Unauthorized("Invalid API key.")
        entry = await self._lookup(key)
        if entry is None:
            raise Unauthorized("Invalid API key.")
        if not entry.usable:
            raise Unauthorized(entry.reason)
        if entry.expires_at is not None and time.time() >= entry.expires_at:
            self._spawn(self._audit_expired(entry))
            raise Unauthorized("This API key has expired.")
        return Principal(kind="virtual", key_id=entry.id, key=entry)

    async def consume(self, principal: Principal) -> None:
        """Count one admitted request against the key's ``max_requests`` (403 when none
        are left); called once the request is known to be allowed."""
        entry = principal.key
        if entry is None or entry.max_requests is None:
            return
        if not await self._take_request(entry):
            raise Forbidden(
                f"This API key has used all {entry.max_requests} of its allowed requests.",
                code="request_quota_exhausted",
            )

    async def _lookup(self, key: str) -> KeyEntry | None:
        epoch = await self._current_epoch()
        if epoch != self._epoch:
            self._cache.clear()
            self._epoch = epoch
        digest = self._keys.hash_key(key)
        cached = self._cache.get(digest)
        if cached is None:
            try:
                cached = await self._load(digest)
            except Exception:  # the edge: the key store is unreachable
                log.warning("key lookup failed", exc_info=True)
                raise _store_down() from None
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = cached
        return cached if isinstance(cached, KeyEntry) else None

    async def _current_epoch(self) -> int:
        """The committed epoch; while the database is unreachable, the last one read, for
        up to ``grace`` seconds."""
        try:
            epoch = await self._db.epoch.current()
        except Exception:  # the edge: serve from the cache within the grace window
            if self._epoch < 0 or time.monotonic() > self._fresh_until:
                log.warning("key epoch unreadable; refusing", exc_info=True)
                raise _store_down() from None
            return self._epoch
        self._fresh_until = time.monotonic() + self._grace
        return epoch

    async def _load(self, digest: str) -> KeyEntry | object:
        async with self._db.reader() as session:
            found = await key_store.by_hash(session, digest)
        if found is None:
            return _UNKNOWN
        key, project = found
        # The index lookup is by a keyed hash; compare in constant time all the same.
        if not hmac.compare_digest(key.key_hash, digest):
            return _UNKNOWN
        usable, reason = True, ""
        if key.revoked_at is not None:
            usable, reason = False, "This API key has been revoked."
        elif not key.active:
            usable, reason = False, "This API key is deactivated."
        elif not project.active:
            usable, reason = False, f"The project '{project.name}' is deactivated."
        expires = as_utc(key.expires_at)
        return KeyEntry(
            id=key.id,
            name=key.name,
            project_id=project.id,
            project_name=project.name,
            usable=usable,
            reason=reason,
            expires_at=expires.timestamp() if expires else None,
            models=tuple(key.models) if key.models is not None else None,
            max_requests=key.max_requests,
            metadata=dict(key.metadata_ or {}),
            credentials=project_store.open_credentials(self._keys, project),
            limits={
                "max_budget_usd": key.max_budget_usd,
                "budget_period": key.budget_period,
                "rpm": key.rpm,
                "tpm": key.tpm,
                "max_parallel": key.max_parallel,
            },
            project_limits={
                "max_budget_usd": project.max_budget_usd,
                "budget_period": project.budget_period,
                "rpm": project.rpm,
                "tpm": project.tpm,
                "max_parallel": project.max_parallel,
            },
        )

    async def _take_request(self, entry: KeyEntry) -> bool:
        try:
            async with self._db.transaction() as session:
                return await key_store.take_request(session, entry.id)
        except Exception:  # the edge: the request count cannot be kept; fail closed
            log.warning("request quota unavailable", exc_info=True)
            raise _store_down() from None

    async def _audit_expired(self, entry: KeyEntry) -> None:
        async with self._db.transaction() as session:
            if await key_store.mark_expiry_audited(session, entry.id):
                await append(
                    session,
                    self._keys.audit,
                    actor="system",
                    action="key.expired_on_use",
                    target_type="key",
                    target_id=entry.id,
                    details={"name": entry.name, "project_id": entry.project_id},
                )

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background audit write failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for background writes (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _store_down() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The gateway cannot verify keys right now; retry shortly.", code="database_unavailable"
    )
