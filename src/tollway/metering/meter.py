"""Metering around one call: admission before it, one spend record and settlement after.

admit()    price lookup, worst-case hold on budgets (provable bound), rate-limit ticket
intend()   journal that the call was admitted (a crash then still leaves a record)
usage      the upstream's counts, validated; estimates where they are missing or wrong
complete() usage -> cost -> journaled spend record (before the response completes)
release()  settle the hold to the actual cost, count tokens, free the slot

A store the meter depends on failing (database, Redis) is a 503 with Retry-After at
admission; after the upstream answered it is never an error for the client: the
settlement is retried in the background (``holds.py``).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from tollway.auth.credentials import Principal
from tollway.dialects.endpoints import Endpoint, RequestInfo
from tollway.errors import Forbidden, ServiceUnavailable, TollwayError
from tollway.metering.budget import Budget, Reservation
from tollway.metering.estimates import Estimator, input_bound
from tollway.metering.holds import Holds
from tollway.metering.limits import Limits, Ticket
from tollway.metering.outcome import Admission, Outcome, RateLimiter
from tollway.metering.prices import ModelPrice, PriceBook
from tollway.metering.records import Recorder, utc_iso
from tollway.metering.usage import Usage
from tollway.routing.router import Plan, Route, Router

log = logging.getLogger("tollway.metering")
_FREE = frozenset({Endpoint.COUNT_TOKENS})
USAGE_INVALID = "usage_invalid"


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
        problem=a.problem or b.problem,
    )


class Meter:
    """Prices, budgets, limits and spend records for the pipeline."""

    def __init__(
        self,
        prices: PriceBook,
        holds: Holds,
        limiter: RateLimiter,
        recorder: Recorder,
        estimator: Estimator,
        router: Router,
        default_max_output: int,
        limits_fail_open: bool = False,
    ) -> None:
        self.prices = prices
        self.holds = holds
        self.ledger = holds.ledger
        self._limiter = limiter
        self.recorder = recorder
        self.estimate = estimator
        self.router = router  # replaced on a config reload
        self._default_max_output = default_max_output
        self._limits_fail_open = limits_fail_open
        recorder.crash_cost = self.crash_cost
        recorder.recovered = holds.reclaim
        self._failures = holds.failures = recorder.failures

    def price_of(self, route: Route) -> ModelPrice | None:
        """The route's price (config override first)."""
        provider = route.provider
        return self.prices.lookup(
            route.upstream_model,
            provider.price_provider_id,
            provider.price_api_url,
            route.config.price,
        )

    async def limit(self, principal: Principal) -> Admission:
        """Take the caller's rate-limit capacity (rpm, tpm, max_parallel) or raise 429
        (503 when the store behind them is unreachable). Runs before anything may
        answer the call, a cache hit included: a hit is a request too."""
        admission = Admission()
        scopes = _rate_scopes(principal)
        if scopes:
            admission.ticket = await self._acquire(scopes)
            if admission.ticket is not None:
                admission.headers = admission.ticket.headers
        return admission

    async def admit(
        self,
        admission: Admission,
        principal: Principal,
        chain: list[Plan],
        extra: list[Plan],
        endpoint: Endpoint,
        payload: dict[str, Any],
        info: RequestInfo,
        body: bytes,
        request_id: str,
    ) -> None:
        """Hold budget for the call (``admission`` came from ``limit``), or raise 402 /
        403 (503 when the ledger is unreachable).

        The hold covers the most expensive deployment the call may reach (its model,
        fallbacks and ``extra`` plans) at a provable bound of its input plus its maximum
        output, so no number of concurrent calls can spend past a budget, whatever the
        upstream counts; a budget refuses at most one call's bound early. For a budgeted
        key, fallbacks without a known price are left out of the chain rather than risk
        an unpriced call.
        """
        admission.chain = chain
        budgets = _budgets(principal) if endpoint not in _FREE else []
        if not budgets:
            return
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
        bound = input_bound(payload, body)
        worst = max(
            price.cost(
                Usage(input_tokens=bound, output_tokens=self._max_output(route, endpoint, info))
            )
            for plan in [*priced, *(p for p in extra if self._priced(p))]
            for route in plan.routes()
            if (price := self.price_of(route)) is not None
        )
        admission.reservation = await self._reserve(budgets, worst, request_id)

    async def _reserve(self, budgets: list[Budget], worst: Decimal, request_id: str) -> Reservation:
        try:
            reservation = await self.ledger.reserve(budgets, worst, request_id)
        except TollwayError:
            raise
        except Exception:  # the edge: the ledger's store is down; fail closed
            log.warning("budget ledger unavailable", exc_info=True)
            self._failures.report(self.ledger.store, "budget")
            raise ServiceUnavailable(
                "Budgets cannot be checked right now; retry shortly.", code="budget_unavailable"
            ) from None
        self.holds.track(reservation)
        return reservation

    async def _acquire(self, scopes: list[Limits]) -> Ticket | None:
        try:
            return await self._limiter.acquire(scopes)
        except TollwayError:
            raise
        except Exception:  # the edge: the limiter's store is down
            log.warning("rate limiter unavailable", exc_info=True)
            self._failures.report(self._limiter.store, "rate_limit")
            if self._limits_fail_open:
                return None
            raise ServiceUnavailable(
                "Rate limits cannot be checked right now; retry shortly.",
                code="rate_limits_unavailable",
            ) from None

    def _priced(self, plan: Plan) -> bool:
        return all(self.price_of(route) is not None for route in plan.routes())

    def _max_output(self, route: Route, endpoint: Endpoint, info: RequestInfo) -> int:
        if endpoint is Endpoint.EMBEDDINGS:
            return 0
        limit = info.max_output_tokens or self.assumed_output_limit(route)
        return limit * info.choices  # every choice may use the whole limit

    def assumed_output_limit(self, route: Route) -> int:
        """The output limit a budget hold assumes when the request sets none (and which
        the forwarded request is then given, so the hold stays a bound)."""
        return route.config.max_output_tokens or self._default_max_output

    def intend(self, fields: dict[str, Any], admission: Admission, body_bytes: int) -> None:
        """Journal that the call was admitted: if the process dies before the call's
        record is journaled, replay records it from this (``Recorder``)."""
        reservation = admission.reservation
        self.recorder.intend(
            {
                **fields,
                "reserved_nano": reservation.nano if reservation is not None else None,
                "input_bytes": body_bytes,
            }
        )

    def crash_cost(self, intent: dict[str, Any]) -> tuple[Decimal, bool, int]:
        """What a call cut by a crash is charged: what it held when it had a budget,
        else its input (body bytes / 4 tokens) at its model's price; flagged."""
        input_tokens = int(intent.get("input_bytes") or 0) // 4
        reserved = intent.get("reserved_nano")
        if isinstance(reserved, int):
            return Decimal(reserved) / Decimal(1_000_000_000), True, input_tokens
        try:
            route = self.router.resolve(str(intent.get("model"))).routes()[0]
        except TollwayError:
            return Decimal(0), False, input_tokens
        price = self.price_of(route)
        if price is None:
            return Decimal(0), False, input_tokens
        return price.cost(Usage(input_tokens=input_tokens)), True, input_tokens

    async def body_usage(
        self, provider: str, usage: Usage | None, payload: dict[str, Any] | None, body: bytes
    ) -> Usage:
        """The usage of a complete answer: the upstream's counts, or (flagged) an
        estimate when it reported none or nonsense."""
        if usage is not None and not usage.problem:
            return usage
        estimate = await self.estimate.body(payload, body)
        if usage is not None:
            _warn_invalid(provider, usage)
            estimate.problem = usage.problem
        return estimate

    async def fill_estimates(
        self, outcome: Outcome, payload: dict[str, Any] | None, provider: str | None
    ) -> None:
        """Before the record is written: estimate what the upstream did not count (a cut
        stream, a client gone mid-answer) or counted wrong (flagged ``usage_invalid``)."""
        stream = outcome.stream
        if stream is not None:
            if stream.usage is not None and stream.usage.problem:
                _warn_invalid(provider, stream.usage)
                outcome.flags.add(USAGE_INVALID)
                outcome.usage = await self.estimate.stream(stream, payload)
            elif not (stream.finished and stream.usage is not None):
                outcome.usage = await self.estimate.stream(stream, payload)
        elif outcome.usage is None and outcome.disconnected and outcome.attempted:
            # The upstream read the prompt; what it wrote was never seen.
            outcome.usage = Usage(input_tokens=await self.estimate.input(payload), estimated=True)
        if outcome.usage is not None and outcome.usage.problem:
            outcome.flags.add(USAGE_INVALID)

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
        if usage.problem and not usage.estimated:
            usage = Usage(estimated=True, problem=usage.problem)  # never priced as given
        outcome.cost, outcome.priced = Decimal(0), True
        for used, price in [*outcome.earlier, (usage, outcome.price)]:
            if endpoint in _FREE or used.total_tokens == 0 or outcome.cached:
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
            "flags": ",".join(sorted(outcome.flags)) or None,
        }
        outcome.record = record
        self.recorder.record(record)

    async def release(self, outcome: Outcome, admission: Admission | None) -> None:
        """Settle budgets to the actual cost and count tokens against limits; a store
        failing here is logged and retried, never raised (the call is answered)."""
        if admission is None:
            return
        if admission.reservation is not None and not admission.reservation.settled:
            await self.holds.settle(admission.reservation, outcome.cost or Decimal(0))
        ticket, admission.ticket = admission.ticket, None
        if ticket is not None:
            # A cache hit used no upstream tokens: it counts as a request, not as tokens.
            used = outcome.usage if not outcome.cached else None
            tokens = used.total_tokens if used else 0
            try:
                await self._limiter.release(ticket, tokens)
            except Exception:  # the edge: counters expire on their own in the store
                log.warning("releasing a rate-limit ticket failed", exc_info=True)
                self._failures.report(self._limiter.store, "rate_limit_release")

    async def spent(self, budget: Budget) -> Decimal:
        """Current-period spend of a budget (recorded plus held)."""
        return await self.ledger.spent(budget)


def _warn_invalid(provider: str | None, usage: Usage) -> None:
    log.warning(
        "upstream reported invalid usage; recording an estimate",
        extra={"fields": {"provider": provider, "problem": usage.problem}},
    )
