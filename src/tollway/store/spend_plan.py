"""How a spend report cuts a time range into parts that each source answers exactly.

    whole hours before the running totals' horizon   running totals (``running.py``):
                                                    two rows per group, any length
    other whole days                                daily rollup cells
    other whole hours                               hourly rollup cells
    the parts of an hour at each end                the spend rows

An end that falls in the later half of its hour is read as the whole hour (from cells
or running totals) minus the rows of the rest of it (a part with ``sign`` -1), so at
most half an hour of rows is read at each end: a report up to now subtracts the rows
after now, which are none. Running totals are used only for reports over every key and
project (``horizon`` given); reports of one key or project read that key's or project's
cells through their index.

If retention has deleted the rows of an hour at an end, that end counts the hour's
cells as far as the rows would have been subtracted, or nothing where they would have
been added: retention keeps whole hours and days exact, not parts of an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tollway.store.rollups import DAY, HOUR, bucket, instant
from tollway.store.running import Span

HALF_HOUR = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Rows:
    """A part of a range read from the spend rows: [since, until), added or (sign -1)
    subtracted."""

    since: datetime
    until: datetime
    sign: int = 1


@dataclass(frozen=True, slots=True)
class Cells:
    """A part of a range read from the cells of one span: buckets in [low, high)."""

    span: int
    low: int | None
    high: int | None


Part = Rows | Cells | Span


def plan(since: datetime | None, until: datetime | None, horizon: int | None = None) -> list[Part]:
    """The parts whose signed sum is [since, until) exactly (None: open); with a horizon,
    the whole hours before it from the running totals."""
    if since is not None and until is not None and bucket(since, HOUR) == bucket(until, HOUR):
        return [Rows(since, until)]  # inside one hour
    parts: list[Part] = []
    low = high = None
    if since is not None:
        start = bucket(since, HOUR)
        if instant(start) == since:
            low = start
        elif instant(start + HOUR) - since > HALF_HOUR:
            low = start
            parts.append(Rows(instant(start), since, -1))
        else:
            low = start + HOUR
            parts.append(Rows(since, instant(low)))
    if until is not None:
        start = bucket(until, HOUR)
        if instant(start) == until:
            high = start
        elif until - instant(start) > HALF_HOUR:
            high = start + HOUR
            parts.append(Rows(until, instant(high), -1))
        else:
            high = start
            parts.append(Rows(instant(start), until))
    return parts + hours(low, high, horizon)


def hours(low: int | None, high: int | None, horizon: int | None) -> list[Part]:
    """Whole hours [low, high): running totals before the horizon, then days and hours."""
    if low is not None and high is not None and low >= high:
        return []
    parts: list[Part] = []
    if horizon is not None:
        end = horizon if high is None else min(high, horizon)
        if low is None or low < end:
            parts.append(Span(low, end))
            low = end
            if high is not None and low >= high:
                return parts
    day_low = -(-low // DAY) * DAY if low is not None else None
    day_high = high // DAY * DAY if high is not None else None
    if day_low is not None and day_high is not None and day_low >= day_high:
        return [*parts, Cells(HOUR, low, high)]
    if low is not None and day_low != low:
        parts.append(Cells(HOUR, low, day_low))
    parts.append(Cells(DAY, day_low, day_high))
    if high is not None and day_high != high:
        parts.append(Cells(HOUR, day_high, high))
    return parts
