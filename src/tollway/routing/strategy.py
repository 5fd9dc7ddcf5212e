"""Choosing among a model's available deployments."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence

from tollway.routing.deployment import Deployment


class Strategy(ABC):
    """How a model picks one of its ready deployments (``routing:`` in its config).

    Strategies are plugins (entry-point group ``tollway.strategies``); the built-in ones
    are registered the same way. A strategy is built once per gateway and called on the
    request path, so ``choose`` must be quick and must not block.
    """

    @abstractmethod
    def choose(self, ready: Sequence[Deployment]) -> Deployment:
        """One of ``ready`` (never empty; each is available right now)."""


class Weighted(Strategy):
    """At random, in proportion to each deployment's ``weight``."""

    def choose(self, ready: Sequence[Deployment]) -> Deployment:
        return random.choices(ready, weights=[d.weight for d in ready])[0]  # noqa: S311


class LeastBusy(Strategy):
    """The one with the fewest calls in flight (ties at random)."""

    def choose(self, ready: Sequence[Deployment]) -> Deployment:
        fewest = min(d.in_flight for d in ready)
        return random.choice([d for d in ready if d.in_flight == fewest])  # noqa: S311


class LowestLatency(Strategy):
    """The fastest by recent latency; one never tried yet is tried first."""

    def choose(self, ready: Sequence[Deployment]) -> Deployment:
        untried = [d for d in ready if d.latency_ewma_ms is None]
        if untried:
            return random.choice(untried)  # noqa: S311
        return min(ready, key=lambda d: d.latency_ewma_ms or 0.0)


def pick(
    deployments: Sequence[Deployment], strategy: Strategy, avoid: set[int] | None = None
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
    return strategy.choose(ready)


_MASK64 = (1 << 64) - 1


def rendezvous(
    deployments: Sequence[Deployment], seeds: Sequence[int], key: int
) -> Deployment | None:
    """The available deployment ranked first for ``key`` (a ``key_digest``), or None."""
    # Weighted rendezvous hashing: each deployment draws a uniform u from (key, seed) and
    # scores ln(u) / weight. The top score wins with probability weight / total, the
    # same key always draws the same numbers, and a deployment that drops out hands on
    # only the keys it was winning (each to that key's runner-up).
    best: Deployment | None = None
    best_score = -math.inf
    for deployment, seed in zip(deployments, seeds, strict=True):
        if not deployment.available():
            continue
        # SplitMix64's finalizer: a cheap bijective mix, so every (key, seed) pair draws
        # its own well-spread number without a hash call per deployment.
        x = key ^ seed
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
        # The top 53 bits, centred in their interval: u in (0, 1), never 0 (log) nor 1.
        score = math.log(((x >> 11) + 0.5) * 2.0**-53) / deployment.weight
        if score > best_score:
            best, best_score = deployment, score
    return best
