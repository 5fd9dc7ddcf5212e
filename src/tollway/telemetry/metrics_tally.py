"""What calls add to the metrics, kept in plain attributes and written to
prometheus-client's values in one batch (once a second, and before a scrape).

A value of prometheus-client takes a lock on every change, and in a worker of several
also writes its memory-mapped file: about a microsecond in memory and three in a file,
and a call changes twenty of them. Here a call adds to a Python number on the labelled
series (looked up once per distinct label values and kept), and the flush writes each
series that changed once, however many calls changed it.

A histogram's observations are bucketed here the way prometheus-client buckets them (a
value goes to the first bucket whose bound is not below it) and added to the series'
own bucket and sum values: prometheus-client has no public call to add many
observations at once, so this module is the one place that relies on how its
``Histogram`` keeps them (``_upper_bounds``, ``_buckets``, ``_sum``).
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Histogram


class Added:
    """A counter series and what was added to it since the last flush."""

    __slots__ = ("amount", "series")

    def __init__(self, series: Counter) -> None:
        self.series = series
        self.amount = 0.0

    def add(self, amount: float = 1.0) -> None:
        """Count ``amount`` more."""
        self.amount += amount


class Observed:
    """A histogram series and what was observed on it since the last flush."""

    __slots__ = ("bounds", "counts", "observations", "series", "total")

    def __init__(self, series: Histogram, bounds: tuple[float, ...]) -> None:
        self.series = series
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.observations = 0

    def observe(self, value: float) -> None:
        """Observe ``value``."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.observations += 1


class Counters:
    """One counter's labelled series, each made once, in a tally."""

    __slots__ = ("_made", "_metric", "_tally")

    def __init__(self, metric: Counter, tally: Tally) -> None:
        self._metric = metric
        self._tally = tally
        self._made: dict[tuple[str, ...], Added] = {}

    def __call__(self, *values: str) -> Added:
        found = self._made.get(values)
        if found is None:
            found = self._made[values] = Added(self._metric.labels(*values))
            self._tally.added.append(found)
        return found


class Histograms:
    """One histogram's labelled series, each made once, in a tally."""

    __slots__ = ("_bounds", "_made", "_metric", "_tally")

    def __init__(self, metric: Histogram, tally: Tally) -> None:
        self._metric = metric
        self._tally = tally
        self._bounds = tuple(metric._upper_bounds)  # the buckets, +Inf last
        self._made: dict[tuple[str, ...], Observed] = {}

    def __call__(self, *values: str) -> Observed:
        found = self._made.get(values)
        if found is None:
            found = self._made[values] = Observed(self._metric.labels(*values), self._bounds)
            self._tally.observed.append(found)
        return found


class Tally:
    """Every series the observer changes, and the flush that writes them."""

    def __init__(self) -> None:
        self.added: list[Added] = []
        self.observed: list[Observed] = []

    def counter(self, metric: Counter) -> Counters:
        """The labelled series of ``metric``, counted here."""
        return Counters(metric, self)

    def histogram(self, metric: Histogram) -> Histograms:
        """The labelled series of ``metric``, observed here."""
        return Histograms(metric, self)

    def flush(self) -> None:
        """Write what changed since the last flush."""
        for added in self.added:
            if added.amount:
                amount, added.amount = added.amount, 0.0
                added.series.inc(amount)
        for observed in self.observed:
            if observed.observations:
                self._write(observed)

    @staticmethod
    def _write(observed: Observed) -> None:
        counts, total = observed.counts, observed.total
        observed.counts, observed.total = [0] * len(counts), 0.0
        observed.observations = 0
        series = observed.series
        series._sum.inc(total)
        buckets = series._buckets  # one count per bucket; exposed cumulatively
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
