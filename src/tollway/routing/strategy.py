"""Choosing among a model's available deployments."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tollway.routing.deployment import Deployment


def pick(
    deployments: Sequence[Deployment], strategy: str, avoid: set[int] | None = None
) -> Deployment | None:
    """One available deployment (preferring ones not in ``avoid``), or None."""
    ready = [d for d in deployments if d.available()]
    if avoid:
        fresh = [d for d in ready if id(d) not in avoid]
        ready = fresh or ready
    if not ready:
        return None
    if len(ready) == 1:
        return ready[0]
    if strategy == "least-busy":
        fewest = min(d.in_flight for d in ready)
        return random.choice([d for d in ready if d.in_flight == fewest])  # noqa: S311
    if strategy == "lowest-latency":
        untried = [d for d in ready if d.latency_ewma_ms is None]
        if untried:
            return random.choice(untried)  # noqa: S311
        return min(ready, key=lambda d: d.latency_ewma_ms or 0.0)
    return random.choices(ready, weights=[d.weight for d in ready])[0]  # noqa: S311
