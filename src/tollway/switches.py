"""Kill switches as the proxy sees them: the whole proxy, a provider, a deployment.

Operators set them through ``/api/v1/switches`` (rows in ``switches``, a bump of the
``switches`` epoch in the same transaction). Every request reads that epoch along with
the keys epoch (one query, see ``store/epoch.py``); when it moved, ``SwitchBoard``
reloads the rows, so a change reaches every process and host on its next request.
Between changes the checks are plain set lookups.

While the database cannot be read the board keeps the state it last loaded: an outage
never turns a switch on or off by itself.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Iterable, Sequence

from tollway.config import ModelConfig
from tollway.store import switches as switch_store
from tollway.store.db import Database
from tollway.store.switches import (
    DEPLOYMENT_PREFIX,
    PROVIDER_PREFIX,
    PROXY,
    SwitchState,
    deployment_switch,
    provider_switch,
)

log = logging.getLogger("tollway.switches")
_GLOB = "*?["  # what makes a configured model name a pattern (as in routing/router.py)
_VERDICTS_LIMIT = 10_000


def deployment_labels(models: Iterable[ModelConfig]) -> list[str]:
    """Every configured deployment as ``provider/model``, in config order, each once (the
    model as configured: a pattern model's deployment keeps its glob)."""
    labels: dict[str, None] = {}
    for model in models:
        for deployment in model.all_deployments():
            labels[f"{deployment.provider}/{deployment.model or model.name}"] = None
    return list(labels)


class SwitchBoard:
    """This process's copy of the switches: reloaded when the switches epoch moves."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._epoch = -1
        self._lock = asyncio.Lock()
        self._states: dict[str, SwitchState] = {}
        self._proxy_on = True
        self._providers_off: frozenset[str] = frozenset()
        self._labels_off: frozenset[str] = frozenset()
        self._globs_off: tuple[str, ...] = ()
        self._verdicts: dict[str, bool] = {}

    @property
    def epoch(self) -> int:
        """The switches epoch of the loaded state (-1: nothing loaded yet)."""
        return self._epoch

    async def refresh_if_changed(self, epoch: int) -> None:
        """Reload the switches if ``epoch`` (read with the keys epoch) is not the loaded
        state's; a failed reload keeps the state and is retried on the next request."""
        # Any difference, not only a higher number: a database restored from a backup
        # can move its counter back. A negative epoch is "never read": nothing to load.
        if epoch == self._epoch or epoch < 0:
            return
        async with self._lock:  # concurrent requests that saw the same move load once
            if epoch == self._epoch:
                return
            try:
                async with self._db.reader() as session:
                    found = await switch_store.states(session)
            except Exception:  # the edge: keep serving on the last known state
                log.warning("kill switches unreadable; keeping the last state", exc_info=True)
                self._db.failures.report("database", "switches")
                return
            self._install(found)
            self._epoch = epoch

    def _install(self, states: dict[str, SwitchState]) -> None:
        off = [name for name, state in states.items() if not state.enabled]
        labels = [n.removeprefix(DEPLOYMENT_PREFIX) for n in off if n.startswith(DEPLOYMENT_PREFIX)]
        self._states = states
        self._proxy_on = PROXY not in off
        self._providers_off = frozenset(
            n.removeprefix(PROVIDER_PREFIX) for n in off if n.startswith(PROVIDER_PREFIX)
        )
        self._labels_off = frozenset(labels)
        self._globs_off = tuple(label for label in labels if any(c in label for c in _GLOB))
        self._verdicts = {}

    @property
    def any_route_off(self) -> bool:
        """Whether any provider or deployment is switched off (routing filters then)."""
        return bool(self._providers_off or self._labels_off)

    def proxy_on(self) -> bool:
        """Whether the proxy serves calls at all."""
        return self._proxy_on

    def provider_on(self, name: str) -> bool:
        """Whether calls may go to the provider ``name``."""
        return name not in self._providers_off

    def deployment_on(self, provider: str, model: str) -> bool:
        """Whether calls may go to ``model`` (the upstream id) at ``provider``: off when
        its ``provider/model`` label, or the glob of the pattern model serving it, is."""
        if not self._labels_off:
            return True
        label = f"{provider}/{model}"
        if label in self._labels_off:
            return False
        if not self._globs_off:
            return True
        verdict = self._verdicts.get(label)
        if verdict is None:
            verdict = not any(fnmatch.fnmatchcase(label, glob) for glob in self._globs_off)
            if len(self._verdicts) >= _VERDICTS_LIMIT:
                self._verdicts.clear()
            self._verdicts[label] = verdict
        return verdict

    def route_on(self, provider: str, model: str) -> bool:
        """Whether a call may go to ``model`` at ``provider``: both its provider's and
        its deployment's switches are on."""
        return provider not in self._providers_off and self.deployment_on(provider, model)

    def state(self, name: str) -> SwitchState | None:
        """Who set switch ``name`` (``proxy``, ``provider:x``, ``deployment:x/y``) and
        when; None if it never was."""
        return self._states.get(name)

    def proxy_state(self) -> SwitchState | None:
        """Who last set the proxy switch, and when."""
        return self._states.get(PROXY)

    def provider_state(self, name: str) -> SwitchState | None:
        """Who last set the provider's switch, and when."""
        return self._states.get(provider_switch(name))

    def deployment_state(self, provider: str, model: str) -> SwitchState | None:
        """Who last set the deployment's switch, and when (exact labels only)."""
        return self._states.get(deployment_switch(f"{provider}/{model}"))

    def off(self) -> Sequence[SwitchState]:
        """Every switch now off."""
        return [state for state in self._states.values() if not state.enabled]
