"""Every metric Tollway keeps: name, help, labels, buckets and, for gauges, how the
values of several worker processes combine.

With ``--workers N`` each process writes its values to memory-mapped files
(prometheus-client's multiprocess mode, ``metrics_files.py``) and a scrape merges them:
counters and histograms are summed, including those of workers that have exited (a
total never goes back). Gauges say how they merge:

    livesum  summed over the processes alive now (calls in flight, journal lag)
    livemax  the largest value among the processes alive now: a breaker open in any
             worker shows as open (each worker has its own breakers, by design)

Values read from the database at scrape time (budgets, quarantine) are not here: the
scraping process computes them for everyone (``metrics_scrape.py``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A call to an LLM takes from tens of milliseconds (embeddings, a cache hit) to many
# minutes (a long reasoning answer; the default read timeout is ten minutes).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 15, 30, 60, 120)
# The boundaries the OpenTelemetry GenAI conventions ask for
# (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/).
GEN_AI_TOKEN_BUCKETS = tuple(4.0**power for power in range(14))
GEN_AI_DURATION_BUCKETS = tuple(0.01 * 2.0**power for power in range(14))

GEN_AI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")


class Families:
    """The metrics one gateway process records, registered on ``registry`` (None in
    multiprocess mode: the files are what a scrape reads)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "tollway_requests_total",
            "Proxied calls, by the status the client received.",
            ("endpoint", "model", "provider", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "tollway_request_duration_seconds",
            "Time from a call's arrival until it was settled (response sent, spend recorded).",
            ("endpoint", "model", "provider"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "tollway_time_to_first_token_seconds",
            "Time from a streamed call's arrival until its first event reached the client.",
            ("endpoint", "model", "provider"),
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "tollway_tokens_total",
            "Tokens of metered calls by type (input counts every input token; cache_read "
            "and cache_write are the part of it read from or written to a prompt cache).",
            ("type", "model", "provider", "project"),
            registry=registry,
        )
        self.cost = Counter(
            "tollway_cost_usd_total",
            "Metered cost in US dollars.",
            ("model", "provider", "project"),
            registry=registry,
        )
        self.unpriced = Counter(
            "tollway_unpriced_requests_total",
            "Calls with tokens but no known price (recorded and flagged, never as $0).",
            ("model", "provider"),
            registry=registry,
        )
        self.budget_refusals = Counter(
            "tollway_budget_refusals_total",
            "Calls refused with 402 because a key's or project's budget could not hold them.",
            ("model", "project"),
            registry=registry,
        )
        self.rate_limit_refusals = Counter(
            "tollway_rate_limit_refusals_total",
            "Calls refused with 429 by a key's or project's rate limits.",
            ("model", "project"),
            registry=registry,
        )
        self.attempts = Counter(
            "tollway_upstream_attempts_total",
            "Tries at an upstream deployment, by outcome: ok, or the class of the failure "
            "(rate_limited, timeout, unavailable, busy, rejected, too_large, error, aborted).",
            ("model", "provider", "outcome"),
            registry=registry,
        )
        self.retries = Counter(
            "tollway_retries_total",
            "Tries that followed a failed one within the same call (on this model and "
            "provider, fallbacks included).",
            ("model", "provider"),
            registry=registry,
        )
        self.fallbacks = Counter(
            "tollway_fallbacks_total",
            "Calls whose last try went to a fallback model instead of the one requested "
            "(model: the one requested; provider: the fallback's).",
            ("model", "provider"),
            registry=registry,
        )
        self.store_errors = Counter(
            "tollway_store_errors_total",
            "Failed database or Redis operations, each counted once where it is handled "
            "(served from the last state read, retried later, or refused with a 503).",
            ("store", "operation"),
            registry=registry,
        )
        self.in_flight = Gauge(
            "tollway_requests_in_flight",
            "Proxied calls being handled now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.circuit_open = Gauge(
            "tollway_circuit_open",
            "1 while a deployment's circuit breaker is open or half-open in some worker "
            "(until a probe succeeds); for provider/_other, how many such deployments.",
            ("deployment",),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.journal_pending = Gauge(
            "tollway_spend_journal_pending",
            "Spend records journaled on disk but not yet in the database.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.flush_failing = Gauge(
            "tollway_spend_flush_failing",
            "1 while some worker's last attempt to write spend records to the database "
            "failed (they wait in its journal).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.gen_ai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "OpenTelemetry gen_ai.client.token.usage: input and output tokens per call.",
            (*GEN_AI_LABELS, "gen_ai_token_type"),
            buckets=GEN_AI_TOKEN_BUCKETS,
            registry=registry,
        )
        self.gen_ai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "OpenTelemetry gen_ai.client.operation.duration: each try at an upstream.",
            (*GEN_AI_LABELS, "error_type"),
            buckets=GEN_AI_DURATION_BUCKETS,
            registry=registry,
        )


# What the scrape computes from the database (metrics_scrape.py).
SCRAPED = (
    "tollway_budget_limit_usd",
    "tollway_budget_spent_usd",
    "tollway_budget_held_usd",
    "tollway_spend_quarantined",
)


def exported_names() -> frozenset[str]:
    """Every metric family name ``/metrics`` can show (as Prometheus stores them)."""
    registry = CollectorRegistry()
    Families(registry)
    names = set(SCRAPED)
    for family in registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return frozenset(names)
