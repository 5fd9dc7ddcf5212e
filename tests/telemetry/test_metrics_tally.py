"""Batched increments and observations expose exactly what direct ones would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tollway.telemetry.metrics_tally import Tally

BUCKETS = (0.1, 1, 10)
# Below, on and between the bounds, past the last one, and zero.
VALUES = [0, 0.05, 0.1, 0.1000001, 1, 5, 10, 11, 1e9, 0.1, 3]


def _pair() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ("a",), registry=registry)
    histogram = Histogram("h_seconds", "h", ("a",), buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def _exposed(registry: CollectorRegistry) -> list[str]:
    # Without the creation times, which differ between the two registries.
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_a_flush_writes_what_direct_calls_would() -> None:
    direct, counter, histogram = _pair()
    batched, batched_counter, batched_histogram = _pair()
    tally = Tally()
    counters, histograms = tally.counter(batched_counter), tally.histogram(batched_histogram)
    for value in VALUES:
        counter.labels("x").inc(value)
        histogram.labels("x").observe(value)
        histogram.labels("y").observe(value * 2)
        counters("x").add(value)
        histograms("x").observe(value)
        histograms("y").observe(value * 2)
    assert _exposed(batched) != _exposed(direct)  # nothing written before the flush
    tally.flush()
    assert _exposed(batched) == _exposed(direct)
    # A second flush writes only what came since.
    histogram.labels("x").observe(0.5)
    histograms("x").observe(0.5)
    tally.flush()
    tally.flush()
    assert _exposed(batched) == _exposed(direct)


def test_each_labelled_series_is_made_once() -> None:
    _, counter, _ = _pair()
    counters = Tally().counter(counter)
    assert counters("x") is counters("x")
    assert counters("x") is not counters("y")
