"""Metering around one call: admission before it, one spend record and settlement after.

admit()    price lookup, worst-case reservation on budgets, rate-limit ticket
complete() usage -> cost -> journaled spend record (before the response completes)
release()  settle the reservation to the actual cost, count tokens, free the slot
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import orjson

from tollway.auth.credentials import Principal
from tollway.dialects.endpoints import Endpoint, RequestInfo
from tollway.errors import Forbidden
from tollway.metering.budget import Budget, Ledger, Reservation
from tollway.metering.limits import Limits, Ticket
from tollway.metering.prices import ModelPrice, PriceBook
from tollway.metering.records import Recorder, utc_iso
from tollway.metering.stream_meter import StreamMeter, collect_text
from tollway.metering.tokens import TokenCounter
from tollway.metering.usage import Usage
from tollway.routing.router import Plan, Route

# Tokenizer estimates undercount other vendors' tokenizers a little; reserve with room.
_ESTIMATE_MARGIN = Decimal("1.10")
_FREE = frozenset({Endpoint.COUNT_TOKENS})


class RateLimiter(Protocol):
    """In-process or Redis rate limits."""

    async def acquire(self, scopes: list[Limits]) -> Ticket:
        """Admit or raise RateLimited."""

    async def release(self, ticket: Ticket, tokens: int) -> None:
        """Free the slot and count tokens."""


@dataclass(slots=True)
class Admission:
    """What admission decided for one call."""

    chain: list[Plan] = field(default_factory=list)
    reservation: Reservation | None = None
    ticket: Ticket | None = None
    input_estimate: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What the call produced, filled in as it runs."""

    usage: Usage | None = None
    price: ModelPrice | None = None
    stream: StreamMeter | None = None
    cost: Decimal | None = None
    priced: bool = True
    journaled: bool = False
    # Usage of earlier attempts that failed after the upstream reported tokens.
    earlier: list[tuple[Usage, ModelPrice | None]] = field(default_factory=list)

    def set_aside(self) -> None:
        """Keep a failed attempt's usage (it was billed) and start the next one clean."""
        if self.usage is not None and self.usage.total_tokens:
            self.earlier.append((self.usage, self.price))
        self.usage = None
        self.stream = None


def _budgets(principal: Principal) -> list[Budget]:
    key = principal.key
    if key is None:
        return []
    budgets = []
    if key.limits.get("max_budget_usd") is not None:
        budgets.append(
            Budget("key", key.id, key.limits["max_budget_usd"], key.limits["budget_period"])
        )
    project = key.project_limits
    if project.get("max_budget_usd") is not None:
        budgets.append(
            Budget("project", key.project_id, project["max_budget_usd"], project["budget_period"])
        )
    return budgets


def _rate_scopes(principal: Principal) -> list[Limits]:
    key = principal.key
    if key is None:
        return []
    scopes = [
        Limits(f"key:{key.id}", key.limits["rpm"], key.limits["tpm"], key.limits["max_parallel"]),
        Limits(
            f"project:{key.project_id}",
            key.project_limits.get("rpm"),
            key.project_limits.get("tpm"),
            key.project_limits.get("max_parallel"),
        ),
    ]
    return [scope for scope in scopes if not scope.empty]


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
        cache_write_1h_tokens=a.cache_write_1h_tokens + b.cache_write_1h_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        estimated=a.estimated or b.estimated,
    )


class Meter:
    """Prices, budgets, limits and spend records for the pipeline."""

    def __init__(
        self,
        prices: PriceBook,
        ledger: Ledger,
        limiter: RateLimiter,
        recorder: Recorder,
        tokens: TokenCounter,
        default_max_output: int,
    ) -> None:
        self.prices = prices
        self.ledger = ledger
        self._limiter = limiter
        self.recorder = recorder
        self._tokens = tokens
        self._default_max_output = default_max_output

    def price_of(self, route: Route) -> ModelPrice | None:
        """The route's price (config override first)."""
        provider = route.provider
        return self.prices.lookup(
            route.upstream_model,
            provider.price_provider_id,
            provider.price_api_url,
            route.config.price,
        )

    async def admit(
        self,
        principal: Principal,
        chain: list[Plan],
        extra: list[Plan],
        endpoint: Endpoint,
        payload: dict[str, Any],
        info: RequestInfo,
    ) -> Admission:
        """Reserve budget and rate-limit capacity, or raise 402 / 403 / 429.

        The reservation covers the most expensive deployment the call may reach (its
        model, fallbacks and ``extra`` plans); for a budgeted key, fallbacks without a
        known price are left out of the chain rather than risk an unpriced call.
        """
        admission = Admission(chain=chain)
        budgets = _budgets(principal) if endpoint not in _FREE else []
        if budgets:
            priced = [plan for plan in chain if self._priced(plan)]
            if not priced or priced[0] is not chain[0]:
                route = chain[0].routes()[0]
                raise Forbidden(
                    f"No price is known for model '{route.model}' (upstream "
                    f"'{route.upstream_model}'), and this key or its project has a budget. "
                    f"Set 'price: {{input_mtok: ..., output_mtok: ...}}' on the model in "
                    "the gateway's config.",
                    param="model",
                    code="price_unknown",
                )
            admission.chain = priced
            admission.input_estimate = await self.estimate_input(payload)
            input_tokens = int(admission.input_estimate * _ESTIMATE_MARGIN) + 16
            worst = max(
                price.cost(
                    Usage(
                        input_tokens=input_tokens,
                        output_tokens=self._max_output(route, endpoint, info),
                    )
                )
                for plan in [*priced, *(p for p in extra if self._priced(p))]
                for route in plan.routes()
                if (price := self.price_of(route)) is not None
            )
            admission.reservation = await self.ledger.reserve(budgets, worst)
        scopes = _rate_scopes(principal)
        if scopes:
            try:
                admission.ticket = await self._limiter.acquire(scopes)
            except BaseException:
                if admission.reservation is not None:
                    await self.ledger.settle(admission.reservation, Decimal(0))
                raise
            admission.headers = admission.ticket.headers
        return admission

    def _priced(self, plan: Plan) -> bool:
        return all(self.price_of(route) is not None for route in plan.routes())

    def _max_output(self, route: Route, endpoint: Endpoint, info: RequestInfo) -> int:
        if endpoint is Endpoint.EMBEDDINGS:
            return 0
        limit = info.max_output_tokens or route.config.max_output_tokens or self._default_max_output
        return limit * info.choices  # every choice may use the whole limit

    async def estimate_input(self, payload: dict[str, Any]) -> int:
        """A tokenizer count of the request's input (off the loop when it is large)."""
        size = sum(len(str(payload.get(f, ""))) for f in ("messages", "input", "prompt"))
        if size > 16_384:
            return await asyncio.to_thread(self._tokens.count_request, payload)
        return self._tokens.count_request(payload)

    async def fill_estimates(self, outcome: Outcome, payload: dict[str, Any] | None) -> None:
        """After a cut or disconnect without upstream counts, estimate with the tokenizer."""
        stream = outcome.stream
        if stream is None or (stream.finished and stream.usage is not None):
            return
        usage = stream.usage or Usage()
        if usage.input_tokens == 0 and payload is not None:
            usage.input_tokens = await self.estimate_input(payload)
        if usage.output_tokens == 0:
            text = stream.generated_text()
            usage.output_tokens = (
                await asyncio.to_thread(self._tokens.count_text, text)
                if len(text) > 16_384
                else self._tokens.count_text(text)
            )
        usage.estimated = True
        outcome.usage = usage

    async def estimate_body(self, payload: dict[str, Any] | None, body: bytes) -> Usage:
        """Usage estimated with the tokenizer for an answer that reported none."""
        parts: list[str] = []
        with contextlib.suppress(orjson.JSONDecodeError):
            collect_text(orjson.loads(body), parts)
        text = "".join(parts)
        output = (
            await asyncio.to_thread(self._tokens.count_text, text)
            if len(text) > 16_384
            else self._tokens.count_text(text)
        )
        input_tokens = await self.estimate_input(payload) if payload is not None else 0
        return Usage(input_tokens=input_tokens, output_tokens=output, estimated=True)

    def complete(
        self,
        outcome: Outcome,
        admission: Admission | None,
        fields: dict[str, Any],
        endpoint: Endpoint,
    ) -> None:
        """Price the call and journal its spend record (once)."""
        if outcome.journaled:
            return
        outcome.journaled = True
        usage = outcome.usage or (outcome.stream.usage if outcome.stream else None) or Usage()
        outcome.usage = usage
        outcome.cost, outcome.priced = Decimal(0), True
        for used, price in [*outcome.earlier, (usage, outcome.price)]:
            if endpoint in _FREE or used.total_tokens == 0:
                continue
            if price is None:
                outcome.priced = False
            else:
                outcome.cost += price.cost(used)
        for used, _ in outcome.earlier:
            usage = _plus(usage, used)
        outcome.usage = usage
        record = {
            **fields,
            "ts": utc_iso(fields.pop("started_at")),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_usd": str(outcome.cost),
            "priced": outcome.priced,
            "estimated": usage.estimated,
        }
        self.recorder.record(record)

    async def release(self, outcome: Outcome, admission: Admission | None) -> None:
        """Settle budgets to the actual cost and count tokens against limits."""
        if admission is None:
            return
        if admission.reservation is not None:
            await self.ledger.settle(admission.reservation, outcome.cost or Decimal(0))
        if admission.ticket is not None:
            tokens = outcome.usage.total_tokens if outcome.usage else 0
            await self._limiter.release(admission.ticket, tokens)

    async def spent(self, budget: Budget) -> Decimal:
        """Current-period spend of a budget (recorded plus held)."""
        return await self.ledger.spent(budget)
