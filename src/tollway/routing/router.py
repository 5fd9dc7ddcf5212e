"""Resolve a client-facing model name to a plan: its deployments and fallbacks.

Exact names win; then glob patterns (``claude-*``) in config order, where the upstream
model is the requested name unless the entry says otherwise. Deployment state (circuit
breakers, latency) is shared by every request in this process.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from tollway.config import CircuitConfig, ModelConfig
from tollway.errors import ModelNotFound
from tollway.providers.base import Provider
from tollway.routing.affinity import deployment_seeds, key_digest
from tollway.routing.circuit import CircuitBreaker
from tollway.routing.deployment import Deployment
from tollway.routing.strategy import Strategy, pick, rendezvous
from tollway.switches import SwitchBoard


@dataclass(frozen=True)
class Route:
    """One deployment chosen to serve a call for a client-facing model."""

    model: str
    config: ModelConfig
    deployment: Deployment

    @property
    def provider(self) -> Provider:
        """The deployment's provider."""
        return self.deployment.provider

    @property
    def upstream_model(self) -> str:
        """The model id sent upstream."""
        return self.deployment.upstream_model


@dataclass(frozen=True)
class Plan:
    """A model's deployments and how to choose among them."""

    model: str
    config: ModelConfig
    deployments: tuple[Deployment, ...]
    strategy: Strategy
    switches: SwitchBoard | None  # None: nothing can be switched off (tests)
    seeds: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", deployment_seeds(d.label for d in self.deployments))

    @property
    def affine(self) -> bool:
        """Whether an affinity key can change this plan's choice (worth deriving one)."""
        return self.config.affinity and len(self.deployments) > 1

    def choose(self, avoid: set[int] | None = None, affinity: str | None = None) -> Route | None:
        """A route to an available deployment (``affinity``'s own while it is available),
        or None when none is."""
        deployments, seeds = self.deployments, self.seeds
        switches = self.switches
        if switches is not None and switches.any_route_off:
            # An operator switched some off: they are not candidates at all.
            on = [switches.route_on(d.provider.name, d.upstream_model) for d in deployments]
            deployments = tuple(d for d, ok in zip(deployments, on, strict=True) if ok)
            seeds = tuple(s for s, ok in zip(seeds, on, strict=True) if ok)
        # A retry (``avoid`` set) uses the strategy: the key's deployment just failed.
        if affinity is not None and not avoid and self.affine:
            deployment = rendezvous(deployments, seeds, key_digest(affinity))
        else:
            deployment = pick(deployments, self.strategy, avoid)
        return Route(self.model, self.config, deployment) if deployment else None

    def switched_off(self) -> list[str]:
        """The deployments an operator switched off (``provider/model``); when that is
        all of them, the model is off rather than unhealthy."""
        switches = self.switches
        if switches is None:
            return []
        return [
            d.label
            for d in self.deployments
            if not switches.route_on(d.provider.name, d.upstream_model)
        ]

    def routes(self) -> list[Route]:
        """A route per deployment (for pricing the worst case)."""
        return [Route(self.model, self.config, d) for d in self.deployments]


def is_pattern(name: str) -> bool:
    """Whether a configured model name is a glob."""
    return any(ch in name for ch in "*?[")


class Router:
    """Model names to plans; built once per app."""

    def __init__(
        self,
        models: list[ModelConfig],
        providers: dict[str, Provider],
        circuit: CircuitConfig,
        strategies: Mapping[str, Strategy],
        switches: SwitchBoard | None = None,
    ) -> None:
        self._providers = providers
        self._circuit = circuit
        self._strategies = strategies
        self._switches = switches
        self._exact: dict[str, Plan] = {}
        self._patterns: list[ModelConfig] = []
        self._pattern_plans: dict[str, Plan] = {}
        for entry in models:
            if is_pattern(entry.name):
                self._patterns.append(entry)
            else:
                self._exact[entry.name] = self._plan(entry.name, entry)

    def _plan(self, name: str, entry: ModelConfig) -> Plan:
        deployments = tuple(
            Deployment.build(
                config,
                self._providers[config.provider],
                config.model or name,
                CircuitBreaker(self._circuit.failures, self._circuit.cooldown),
            )
            for config in entry.all_deployments()
        )
        return Plan(name, entry, deployments, self._strategies[entry.routing], self._switches)

    def resolve(self, model: str) -> Plan:
        """The plan for ``model``, or ModelNotFound naming it."""
        plan = self._exact.get(model) or self._pattern_plans.get(model)
        if plan is not None:
            return plan
        for entry in self._patterns:
            if fnmatch.fnmatchcase(model, entry.name):
                if len(self._pattern_plans) > 10_000:
                    self._pattern_plans.clear()
                plan = self._pattern_plans[model] = self._plan(model, entry)
                return plan
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not served by this gateway.",
            param="model",
        )

    def chain(self, plan: Plan) -> list[Plan]:
        """The plan followed by its fallbacks, in order, each once."""
        plans, seen = [plan], {plan.model}
        for name in plan.config.fallbacks:
            if name not in seen:
                seen.add(name)
                plans.append(self.resolve(name))
        return plans

    def context_chain(self, plan: Plan) -> list[Plan]:
        """Fallbacks for a prompt too long for ``plan``'s model."""
        return [self.resolve(name) for name in plan.config.context_fallbacks]

    def names(self) -> list[str]:
        """Configured model names that are not patterns, for model listings."""
        return list(self._exact)

    def plan_for_listing(self, name: str) -> Plan | None:
        """The plan of a listed (exact) model name."""
        return self._exact.get(name)

    def deployments(self) -> list[tuple[str, Deployment]]:
        """Every known deployment with its model name (for the providers report)."""
        plans = [*self._exact.values(), *self._pattern_plans.values()]
        return [(plan.model, d) for plan in plans for d in plan.deployments]
