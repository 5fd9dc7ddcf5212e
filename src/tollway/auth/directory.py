"""Virtual key verification on the hot path: cached, yet revocation-exact.

Every request reads the epochs (keys and switches, one read: microseconds on SQLite)
and drops the whole cache when the keys epoch moved, so a revoke, expiry change, policy
change or project deactivation committed by any process takes effect on the very next
request everywhere. Between changes, a known key costs one HMAC and one dict lookup.

A ``KeyEntry`` carries everything the proxy applies per key, so none of it costs a
query: the model scopes of the key and its project (groups expanded), limits, the
project's policy (guards, CORS origins, cache) and the key's own guard overrides.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from tollway.audit.chain import append
from tollway.auth.credentials import Principal, presented_key
from tollway.auth.secrets import ServerKeys
from tollway.config import expand_scope, flatten_groups
from tollway.errors import Forbidden, ServiceUnavailable, Unauthorized
from tollway.store import keys as key_store
from tollway.store import projects as project_store
from tollway.store.db import Database
from tollway.store.epoch import UNREAD, Epochs
from tollway.store.ids import VIRTUAL_KEY_PREFIX, as_utc
from tollway.store.tables import Project, VirtualKey

log = logging.getLogger("tollway.auth")
_CACHE_LIMIT = 50_000
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class GuardSetting:
    """What one guard does for a project or key: ``block``, ``redact``, ``flag`` or
    ``off``, and its options (validated by the management API, bounded like metadata)."""

    action: str
    options: dict[str, Any]  # what a guard is constructed with; shared: do not change


_NO_GUARDS: Mapping[str, GuardSetting] = MappingProxyType({})


def _no_guards() -> Mapping[str, GuardSetting]:
    return _NO_GUARDS


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A project's response cache: on or off, and how long an answer is kept."""

    enabled: bool
    ttl: int | None  # seconds, 1..86400; None: the model's or the gateway's


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """A project's body capture (on when set): how much of each body is kept."""

    max_bytes: int


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    """What a project asks of the proxy beyond limits: guards, CORS, cache, models."""

    guards: Mapping[str, GuardSetting] = field(default_factory=_no_guards)
    # Browser origins allowed to call with the project's keys ("*": any). Empty: none,
    # the default: no CORS headers at all.
    cors_origins: frozenset[str] = frozenset()
    cache: CachePolicy | None = None  # None: not set (the gateway's default applies)
    models: tuple[str, ...] | None = None  # the scope as stored (groups not expanded)
    capture: CapturePolicy | None = None  # None: bodies are not captured (the default)

    def allows_origin(self, origin: str) -> bool:
        """Whether a browser at ``origin`` (the Origin header, exactly) may call."""
        return origin in self.cors_origins or "*" in self.cors_origins


_OPEN = ProjectPolicy()


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
    models: tuple[str, ...] | None  # the key's scope, groups expanded (None: any model)
    max_requests: int | None
    metadata: dict[str, Any]
    credentials: dict[str, str]
    limits: dict[str, Any]
    project_limits: dict[str, Any]
    project_models: tuple[str, ...] | None = None  # the project's scope, groups expanded
    project_policy: ProjectPolicy = _OPEN
    key_guards: Mapping[str, GuardSetting] = field(default_factory=_no_guards)
    # The guards that apply: the project's, each replaced by the key's of the same name.
    guards: Mapping[str, GuardSetting] = field(default_factory=_no_guards)
    _allowed: dict[str, bool] = field(default_factory=dict)

    def allows(self, model: str) -> bool:
        """Whether ``model`` is within both the key's and the project's model scope
        (names, globs and the groups they name); cached per model name."""
        verdict = self._allowed.get(model)
        if verdict is None:
            verdict = self.refused_by(model) is None
            self._allowed[model] = verdict
        return verdict

    def refused_by(self, model: str) -> Literal["key", "project"] | None:
        """Whose scope leaves ``model`` out, the key's first; None when both allow it."""
        if not _within(model, self.models):
            return "key"
        if not _within(model, self.project_models):
            return "project"
        return None


def _within(model: str, scope: tuple[str, ...] | None) -> bool:
    return scope is None or any(fnmatch.fnmatchcase(model, pattern) for pattern in scope)


def guard_settings(stored: Mapping[str, Any] | None) -> Mapping[str, GuardSetting]:
    """Stored guard settings (``{name: {"action": ..., **options}}``) for the hot path."""
    if not stored:
        return _NO_GUARDS
    return MappingProxyType(
        {
            name: GuardSetting(
                str(value["action"]), {k: v for k, v in value.items() if k != "action"}
            )
            for name, value in stored.items()
        }
    )


def _capture(setting: Mapping[str, Any] | None) -> CapturePolicy | None:
    if not setting or not setting.get("enabled"):
        return None
    return CapturePolicy(int(setting["max_bytes"]))


def _ttl(value: Any) -> int | None:
    return int(value) if value is not None else None


def project_policy(project: Project) -> ProjectPolicy:
    """A project's stored policy columns for the hot path."""
    cache = project.cache
    return ProjectPolicy(
        guards=guard_settings(project.guards),
        cors_origins=frozenset(project.cors_origins or ()),
        cache=CachePolicy(bool(cache["enabled"]), _ttl(cache.get("ttl"))) if cache else None,
        models=tuple(project.models) if project.models is not None else None,
        capture=_capture(project.capture),
    )


class KeyDirectory:
    """Resolves presented keys to principals."""

    def __init__(
        self,
        db: Database,
        server_keys: ServerKeys,
        master_key: str,
        grace: float = 30.0,
        model_groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._db = db
        self._keys = server_keys
        self._master = master_key.encode()
        self._groups = flatten_groups(model_groups or {})
        self._cache: dict[str, KeyEntry | object] = {}
        self._epoch = -1
        self._epochs = UNREAD  # the last epochs read
        self._unread: BaseException | None = None  # why the last read failed, if it did
        self._grace = grace
        self._fresh_until = 0.0  # monotonic: the cache may be trusted until then
        self._background: set[asyncio.Task[None]] = set()

    def use_groups(self, model_groups: Mapping[str, Sequence[str]]) -> None:
        """Expand key and project model scopes with these groups from now on (a config
        reload): cached keys are read again."""
        self._groups = flatten_groups(model_groups)
        self._cache.clear()

    async def epochs(self) -> Epochs:
        """The committed epochs (keys, switches), read once per request in one query.
        While the database cannot be read: the last ones read (``authenticate`` then
        applies the grace window to virtual keys; switches keep their state)."""
        try:
            epochs = await self._db.epoch.current()
        except Exception as exc:  # the edge: the caller decides what staleness allows
            log.debug("epochs unreadable", exc_info=True)
            self._db.failures.report("database", "epochs")
            self._unread = exc
            return self._epochs
        self._unread = None
        self._epochs = epochs
        self._fresh_until = time.monotonic() + self._grace
        return epochs

    async def authenticate(
        self, headers: dict[str, str], epochs: Epochs | None = None
    ) -> Principal:
        """The caller behind the request's key, or Unauthorized / Forbidden. ``epochs``:
        what ``epochs()`` returned for this request (read here when not given)."""
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(
                "No API key provided. Send it as 'Authorization: Bearer <key>' or 'x-api-key'."
            )
        if hmac.compare_digest(key.encode(), self._master):
            return Principal(kind="master")
        if not key.startswith(VIRTUAL_KEY_PREFIX):
            raise Unauthorized("Invalid API key.")
        entry = await self._lookup(key, epochs)
        if entry is None:
            raise Unauthorized("Invalid API key.")
        if not entry.usable:
            raise Unauthorized(entry.reason)
        if entry.expires_at is not None and time.time() >= entry.expires_at:
            self._spawn(self._audit_expired(entry))
            raise Unauthorized("This API key has expired.")
        return Principal(kind="virtual", key_id=entry.id, key=entry)

    async def consume(self, principal: Principal) -> bool:
        """Count one admitted request against the key's ``max_requests`` (403 when none
        are left); called once the request is known to be allowed. False when the key
        has no ``max_requests``: its count is then kept with the call's spend record,
        off the request path."""
        entry = principal.key
        if entry is None or entry.max_requests is None:
            return False
        if not await self._take_request(entry):
            raise Forbidden(
                f"This API key has used all {entry.max_requests} of its allowed requests.",
                code="request_quota_exhausted",
            )
        return True

    async def _lookup(self, key: str, epochs: Epochs | None) -> KeyEntry | None:
        epoch = await self._keys_epoch(epochs)
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
                self._db.failures.report("database", "key_lookup")
                raise _store_down() from None
            # A change committed while this key was read (another request moved to
            # its epoch) may be newer than what was read: answer this request with
            # it, but never let it into the newer epoch's cache.
            if self._epoch == epoch:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[digest] = cached
        return cached if isinstance(cached, KeyEntry) else None

    async def _keys_epoch(self, epochs: Epochs | None) -> int:
        """The committed keys epoch; while the database is unreachable, the last one
        read, for up to ``grace`` seconds after the last read that succeeded."""
        if epochs is None:
            epochs = await self.epochs()
        if epochs.keys < 0 or time.monotonic() > self._fresh_until:
            error = self._unread
            exc_info = (type(error), error, error.__traceback__) if error else None
            log.warning("key epoch unreadable; refusing", exc_info=exc_info)
            raise _store_down() from None
        return epochs.keys

    async def _load(self, digest: str) -> KeyEntry | object:
        async with self._db.reader() as session:
            found = await key_store.by_hash(session, digest)
        if found is None:
            return _UNKNOWN
        key, project = found
        # The index lookup is by a keyed hash; compare in constant time all the same.
        if not hmac.compare_digest(key.key_hash, digest):
            return _UNKNOWN
        return self._entry(key, project)

    def _entry(self, key: VirtualKey, project: Project) -> KeyEntry:
        usable, reason = True, ""
        if key.revoked_at is not None:
            usable, reason = False, "This API key has been revoked."
        elif not key.active:
            usable, reason = False, "This API key is deactivated."
        elif not project.active:
            usable, reason = False, f"The project '{project.name}' is deactivated."
        expires = as_utc(key.expires_at)
        policy = project_policy(project)
        key_guards = guard_settings(key.guards)
        guards = MappingProxyType({**policy.guards, **key_guards}) if key_guards else policy.guards
        return KeyEntry(
            id=key.id,
            name=key.name,
            project_id=project.id,
            project_name=project.name,
            usable=usable,
            reason=reason,
            expires_at=expires.timestamp() if expires else None,
            models=expand_scope(key.models, self._groups),
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
            project_models=expand_scope(project.models, self._groups),
            project_policy=policy,
            key_guards=key_guards,
            guards=guards,
        )

    async def _take_request(self, entry: KeyEntry) -> bool:
        try:
            async with self._db.transaction() as session:
                return await key_store.take_request(session, entry.id)
        except Exception:  # the edge: the request count cannot be kept; fail closed
            log.warning("request quota unavailable", exc_info=True)
            self._db.failures.report("database", "request_quota")
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
