"""Prometheus metrics, recorded as the proxy tells telemetry what each call did.

``MetricsObserver`` turns the observer hooks into counter increments and histogram
observations (the metrics: ``metrics_families.py``; their label values, bounded:
``metrics_labels.py``). A hook costs a few dictionary operations: the labelled series
of each metric is made once per distinct set of label values and kept
(prometheus-client's own ``labels()`` builds and checks the key on every call), and
what a call adds waits in a ``Tally`` written once a second and before this process
answers a scrape (``metrics_tally.py``), so a scrape may miss the last second of other
workers' calls. The same tick samples the calls in flight and this process's spend
journal. ``build_metrics`` wires it all to ``/metrics`` (``metrics_route.py``) and to
the values a scrape reads from the stores (``metrics_scrape.py``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tollway.tasks import stop
from tollway.telemetry.metrics_families import Families
from tollway.telemetry.metrics_files import in_files
from tollway.telemetry.metrics_labels import GEN_AI_OPERATIONS, OTHER, Labels
from tollway.telemetry.metrics_route import MetricsEndpoint
from tollway.telemetry.metrics_scrape import Exposition, ScrapeValues
from tollway.telemetry.metrics_tally import Tally
from tollway.telemetry.observer import Observer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from tollway.auth.secrets import ServerKeys
    from tollway.call import CallRecord
    from tollway.metering.records import Recorder
    from tollway.routing.router import Route
    from tollway.settings import Settings
    from tollway.store.db import Database

SAMPLE_SECONDS = 1.0

# An upstream attempt's error code -> its outcome class (anything else: "error").
_OUTCOMES = {
    "upstream_rate_limited": "rate_limited",
    "upstream_timeout": "timeout",
    "upstream_unavailable": "unavailable",
    "upstream_pool_exhausted": "busy",
    "upstream_rejected": "rejected",
    "context_length_exceeded": "rejected",
    "upstream_response_too_large": "too_large",
    "upstream_event_too_large": "too_large",
    "aborted": "aborted",
    "client_disconnected": "aborted",
    "cancelled": "aborted",
}


class MetricsObserver(Observer):
    """Records calls, attempts, refusals, breakers and store failures as metrics."""

    def __init__(
        self,
        families: Families,
        labels: Labels,
        recorder: Recorder,
        endpoint: MetricsEndpoint,
    ) -> None:
        self.families = families
        self.endpoint = endpoint
        self.tally = tally = Tally()
        self._labels = labels
        self._recorder = recorder
        self._requests = tally.counter(families.requests)
        self._duration = tally.histogram(families.duration)
        self._ttft = tally.histogram(families.ttft)
        self._tokens = tally.counter(families.tokens)
        self._cost = tally.counter(families.cost)
        self._unpriced = tally.counter(families.unpriced)
        self._budget_refusals = tally.counter(families.budget_refusals)
        self._rate_refusals = tally.counter(families.rate_limit_refusals)
        self._attempts = tally.counter(families.attempts)
        self._retries = tally.counter(families.retries)
        self._fallbacks = tally.counter(families.fallbacks)
        self._store_errors = tally.counter(families.store_errors)
        self._gen_ai_tokens = tally.histogram(families.gen_ai_tokens)
        self._gen_ai_duration = tally.histogram(families.gen_ai_duration)
        self._in_flight = 0
        # Deployments a glob entry made, open now, per provider (their shared series
        # counts them).
        self._open_others: dict[str, set[str]] = {}
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Show every configured breaker closed, sample, begin the tick, open the port."""
        for deployment in self._labels.deployments:
            self.families.circuit_open.labels(deployment).set(0)
        self.sample()
        self._sampler = asyncio.create_task(self._sample_forever(), name="tollway-metrics")
        await self.endpoint.start()

    async def aclose(self) -> None:
        """Stop the tick and the port; write what is left."""
        sampler, self._sampler = self._sampler, None
        await stop(sampler)
        await self.endpoint.aclose()
        self.sample()

    def sample(self) -> None:
        """Write what calls added; set the calls in flight and this process's spend
        journal (records not yet in the database, and whether writing them fails)."""
        self.tally.flush()
        families = self.families
        families.in_flight.set(self._in_flight)
        families.journal_pending.set(self._recorder.pending)
        families.flush_failing.set(1 if self._recorder.last_flush_error else 0)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.sample()

    # -- the hooks ----------------------------------------------------------------------

    def call_started(self, record: CallRecord) -> None:
        self._in_flight += 1

    def call_finished(self, record: CallRecord) -> None:
        self._in_flight -= 1
        labels = self._labels
        endpoint = record.endpoint  # a StrEnum: its value as a label
        model, provider = labels.model(record), labels.provider(record)
        self._requests(endpoint, model, provider, str(record.status or 500)).add()
        self._duration(endpoint, model, provider).observe(time.perf_counter() - record.started)
        if record.ttft_ms is not None:
            self._ttft(endpoint, model, provider).observe(record.ttft_ms / 1000)
        if record.outcome.journaled and not record.cached:
            self._meter(record, model, provider)
        if record.attempts and _fell_back(record):
            self._fallbacks(model, provider).add()

    def _meter(self, record: CallRecord, model: str, provider: str) -> None:
        outcome = record.outcome
        usage = outcome.usage
        if usage is None or not usage.total_tokens:
            return
        labels, tokens = self._labels, self._tokens
        project = labels.project(record)
        tokens("input", model, provider, project).add(usage.input_tokens)
        tokens("output", model, provider, project).add(usage.output_tokens)
        if usage.cache_read_tokens:
            tokens("cache_read", model, provider, project).add(usage.cache_read_tokens)
        if usage.cache_write_tokens:
            tokens("cache_write", model, provider, project).add(usage.cache_write_tokens)
        if not outcome.priced:
            self._unpriced(model, provider).add()
        elif outcome.cost:
            self._cost(model, provider, project).add(float(outcome.cost))
        operation = GEN_AI_OPERATIONS.get(record.endpoint, record.endpoint)
        system = labels.gen_ai_providers.get(record.provider or "", OTHER)
        upstream = labels.upstream(record.upstream_model)
        self._gen_ai_tokens(operation, system, upstream, "input").observe(usage.input_tokens)
        self._gen_ai_tokens(operation, system, upstream, "output").observe(usage.output_tokens)

    def attempt_started(self, record: CallRecord, route: Route) -> dict[str, str]:
        if record.attempts:  # an earlier try of this call failed
            self._retries(route.config.name, route.provider.name).add()
        return {}

    def attempt_finished(
        self, record: CallRecord, route: Route, error: str | None, seconds: float
    ) -> None:
        labels, provider = self._labels, route.provider.name
        outcome = "ok" if error is None else _OUTCOMES.get(error, "error")
        self._attempts(route.config.name, provider, outcome).add()
        self._gen_ai_duration(
            GEN_AI_OPERATIONS.get(record.endpoint, record.endpoint),
            labels.gen_ai_providers.get(provider, OTHER),
            labels.upstream(route.upstream_model),
            error or "",
        ).observe(seconds)

    def refused(self, record: CallRecord, reason: str) -> None:
        counter = self._budget_refusals if reason == "budget" else self._rate_refusals
        counter(self._labels.model(record), self._labels.project(record)).add()

    def circuit_changed(self, deployment: str, opened: bool) -> None:
        # Rare, and a gauge: written at once.
        label = self._labels.deployment(deployment)
        if label == deployment:
            self.families.circuit_open.labels(label).set(1 if opened else 0)
            return
        provider = label.partition("/")[0]
        others = self._open_others.setdefault(provider, set())
        if opened:
            others.add(deployment)
        else:
            others.discard(deployment)
        self.families.circuit_open.labels(label).set(len(others))

    def store_failed(self, store: str, operation: str) -> None:
        # Reported where the failure is handled (``store/failures.py``): a call refused
        # with a 503 for it counts once, under the operation that failed.
        store = store if store in ("database", "redis") else OTHER
        self._store_errors(store, operation).add()


def _fell_back(record: CallRecord) -> bool:
    """Whether the call's last try went to a deployment of another model than the one
    asked for (a fallback; every fallback follows a failed try)."""
    plan = record.plan
    if plan is None or record.provider is None or record.cached:
        return False
    return not any(
        d.provider.name == record.provider and d.upstream_model == record.upstream_model
        for d in plan.deployments
    )


def build_metrics(
    settings: Settings,
    db: Database,
    redis: Redis | None,
    recorder: Recorder,
    server_keys: ServerKeys,
    master_key: str,
) -> MetricsObserver:
    """The metrics observer with its ``/metrics`` endpoint. In a worker of several, the
    values go to the run's shared files and a scrape reads them all; otherwise they
    stay in this process's registry."""
    config = settings.metrics
    registry = CollectorRegistry()
    if in_files():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        families = Families(None)
    else:
        families = Families(registry)
    scrape = ScrapeValues(
        db,
        recorder.quarantine,
        redis,
        settings.redis_prefix,
        config.max_projects,
        config.cache_seconds,
        families.store_errors,
    )
    exposition = Exposition(registry, scrape)
    observer = MetricsObserver(
        families,
        Labels(settings),
        recorder,
        MetricsEndpoint(exposition, db, server_keys, master_key, config, settings.host),
    )
    # The scraping process shows its own latest values, not those of a second ago.
    exposition.before_scrape = observer.sample
    return observer
