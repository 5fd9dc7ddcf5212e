"""The response cache as the proxy uses it: whether a call may use it, under which key
and scope, for how long; what a hit answers; what a finished call leaves.

Whether: the project's ``cache.enabled`` when it set one, else the gateway's
``cache.enabled``; the client's ``Cache-Control`` (``no-store``: not at all; ``no-cache``:
no read, but the fresh answer is kept); never for sampled calls unless ``cache.sampled``.

Scope (who may see an entry): the project, or every project when ``cache.shared``; a key
with its own provider credentials gets its own (its answers, and the ids in them, belong
to its provider account); master-key calls share the ``master`` scope.

TTL: the project's, else the model's ``cache_ttl``, else the gateway's ``cache.ttl``.

Kept: a 200 answer delivered whole, within ``max_entry_bytes``, of a call that needed
no retry after a billed failure (the stored token counts are the answer's own). When the
gateway added an output limit (for a budget, or the model's ``max_output_tokens``), the
answer is kept only if the model ended it before that limit: a cut answer must not
serve a caller who would have got it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.asgi import Send
from tollway.auth.credentials import Principal
from tollway.cache.directives import cache_directives
from tollway.cache.entry import Entry
from tollway.cache.key import cache_key
from tollway.cache.store import CacheStore
from tollway.cache.wire import AnswerRecorder
from tollway.config_policies import CacheConfig
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.validate import Payload
from tollway.metering.usage import Usage

CACHE_HEADER = b"x-tollway-cache"


@dataclass(frozen=True, slots=True)
class CachePlan:
    """How one call uses the cache."""

    key: str
    ttl: int
    read: bool
    store: bool


class ResponseCache:
    """Looks answers up and keeps them, per the gateway's and the project's settings."""

    def __init__(self, store: CacheStore, config: CacheConfig) -> None:
        self.store = store
        self._config = config

    def plan(
        self,
        principal: Principal,
        endpoint: Endpoint,
        payload: Payload,
        headers: dict[str, str],
        model_ttl: int | None,
    ) -> CachePlan | None:
        """The call's use of the cache, or None when it has none."""
        key_entry = principal.key
        policy = key_entry.project_policy.cache if key_entry is not None else None
        enabled = policy.enabled if policy is not None else self._config.enabled
        if not enabled:
            return None
        read, store = cache_directives(headers)
        if not (read or store):
            return None
        key = cache_key(
            self._scope(principal),
            endpoint,
            payload,
            allow_sampled=self._config.sampled,
            headers=headers,
        )
        if key is None:
            return None
        ttl = (policy.ttl if policy is not None else None) or model_ttl or self._config.ttl
        return CachePlan(key, ttl, read, store)

    def _scope(self, principal: Principal) -> str:
        key = principal.key
        if key is None:
            return "master"
        if key.credentials:
            return f"project:{key.project_id}:key:{key.id}"
        return "shared" if self._config.shared else f"project:{key.project_id}"

    async def lookup(self, plan: CachePlan) -> Entry | None:
        """The entry for ``plan``, if it may be read and one is kept."""
        return await self.store.get(plan.key) if plan.read else None

    def recorder(self, send: Send) -> AnswerRecorder:
        """A ``send`` that keeps a copy of the answer for ``keep``."""
        return AnswerRecorder(send, self._config.max_entry_bytes)

    async def keep(
        self,
        plan: CachePlan,
        recorder: AnswerRecorder,
        endpoint: Endpoint,
        usage: Usage | None,
        *,
        whole_only: bool = False,
    ) -> bool:
        """Store what ``recorder`` saw, if it is a complete good answer (``whole_only``:
        and it was not cut at its output limit); whether it was."""
        if not plan.store:
            return False
        entry = recorder.entry(endpoint, usage)
        if entry is None or (whole_only and entry.cut_short()):
            return False
        await self.store.put(plan.key, entry, plan.ttl)
        return True
