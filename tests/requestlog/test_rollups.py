"""Spend rollups and running totals answer exactly what a sum over the spend rows
answers, for every grouping and any time range, on SQLite and Postgres (Hypothesis draws
the rows, repeats and replays included, compactions between batches, late records after
them, and the questions); and the cover of a range by rows, hours, days and running
totals is exact."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requestlog_support import spend_record, write
from sqlalchemy import text

from tollway.metering.compaction import Compaction
from tollway.store import spend
from tollway.store.db import Database
from tollway.store.rollups import DAY, HOUR, SPANS, bucket, instant
from tollway.store.running import Span
from tollway.store.spend_plan import Cells, Rows, plan

BASE = datetime(2025, 3, 30, 0, 0, tzinfo=UTC)  # a UTC midnight
WINDOW = 3 * 86_400


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """A time in the window: often on an hour or a day boundary, or a microsecond off."""
    seconds = draw(
        st.one_of(
            st.integers(0, WINDOW // HOUR).map(lambda h: h * HOUR),
            st.integers(0, WINDOW),
        )
    )
    micro = draw(st.sampled_from([0, 0, 1, 999_999, 500_000]))
    return BASE + timedelta(seconds=seconds, microseconds=micro)


@st.composite
def records(draw: st.DrawFn, index: int) -> dict[str, Any]:
    cents = draw(st.integers(0, 10**9))
    return spend_record(
        f"req_{draw(st.integers(0, 40)):04d}" if draw(st.booleans()) else f"req_u{index:05d}",
        draw(instants()),
        key_id=draw(st.sampled_from(["key_a", "key_b", "key_c", None])),
        project_id=draw(st.sampled_from(["proj_a", "proj_b", None])),
        model=draw(st.sampled_from(["gpt-x", "claude-y", "embed-z", None])),
        provider=draw(st.sampled_from(["oa", "an", None])),
        endpoint=draw(st.sampled_from(["chat.completions", "messages"])),
        input_tokens=draw(st.integers(0, 10**6)),
        output_tokens=draw(st.integers(0, 10**6)),
        cost_usd=Decimal(cents) / Decimal(10**12) * 997,
        status=draw(st.sampled_from([200, 200, 429, 502])),
        metadata=draw(
            st.sampled_from(
                [{}, {"org": "acme"}, {"org": "globex", "user": "u"}, {"org": 7, "user": True}]
            )
        ),
        priced=draw(st.booleans()),
    )


@st.composite
def batches(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches of records; a later batch may repeat earlier ones (a journal replayed)."""
    count = draw(st.integers(1, 60))
    rows = [draw(records(index)) for index in range(count)]
    cuts = sorted(draw(st.lists(st.integers(0, count), max_size=4)))
    out, start = [], 0
    for cut in [*cuts, count]:
        out.append(rows[start:cut])
        start = cut
    if draw(st.booleans()):
        out.append(draw(st.lists(st.sampled_from(rows), max_size=10)))
    return [batch for batch in out if batch]


CELL_SUMS = "SELECT SUM(requests), SUM(cost_pico) FROM spend_rollups WHERE span = :s"
RESET = ("spend", "spend_rollups", "spend_metadata", "spend_running", "spend_running_heads")
GROUPS = [
    None,
    "key",
    "project",
    "model",
    "provider",
    "endpoint",
    "day",
    "metadata.org",
    "metadata.user",
]
Question = tuple[str | None, datetime | None, datetime | None, str | None, str | None]
questions = st.tuples(
    st.sampled_from(GROUPS),
    st.one_of(st.none(), instants()),
    st.one_of(st.none(), instants()),
    st.sampled_from([None, "key_a", "key_b"]),
    st.sampled_from([None, "proj_a"]),
)


def _group(record: dict[str, Any], group_by: str | None, ts: datetime) -> Any:
    if group_by is None:
        return None
    if group_by == "day":
        return ts.strftime("%Y-%m-%d")
    if group_by.startswith("metadata."):
        # As Postgres' ->> gives a field, on every database: other values than strings
        # as JSON text.
        value = record["metadata"].get(group_by.removeprefix("metadata."))
        return value if value is None or isinstance(value, str) else json.dumps(value)
    column = {"key": "key_id", "project": "project_id"}.get(group_by, group_by)
    return record[column]


def expected(stored: list[dict[str, Any]], question: Question) -> dict[Any, dict[str, Any]]:
    """The answer as a sum over the stored records, by hand."""
    group_by, since, until, key_id, project_id = question
    out: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": Decimal(0),
            "unpriced_requests": 0,
        }
    )
    for record in stored:
        ts = datetime.fromisoformat(record["ts"])
        if (since is not None and ts < since) or (until is not None and ts >= until):
            continue
        if key_id is not None and record["key_id"] != key_id:
            continue
        if project_id is not None and record["project_id"] != project_id:
            continue
        totals = out[_group(record, group_by, ts)]
        totals["requests"] += 1
        totals["input_tokens"] += record["input_tokens"]
        totals["output_tokens"] += record["output_tokens"]
        totals["cost_usd"] += Decimal(record["cost_usd"])
        totals["unpriced_requests"] += 0 if record["priced"] else 1
    return dict(out)


def answered(groups: list[dict[str, Any]], totals: dict[str, Any], group_by: str | None) -> Any:
    fields = ("requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests")
    rows = (
        groups
        if group_by is not None
        else ([{"group": None, **totals}] if totals["requests"] else [])
    )
    return {row["group"]: {name: row[name] for name in fields} for row in rows}


async def _ask(db: Database, stored: list[dict[str, Any]], asked: list[Question]) -> None:
    """Every question is answered as the sum over the stored records answers it."""
    for question in asked:
        group_by, since, until, key_id, project_id = question
        if since is not None and until is not None and since >= until:
            continue
        async with db.reader() as session:
            groups, totals = await spend.report(
                session,
                group_by=group_by,
                since=since,
                until=until,
                key_id=key_id,
                project_id=project_id,
            )
        assert answered(groups, totals, group_by) == expected(stored, question), question
        costs = [row["cost_usd"] for row in groups]
        assert costs == sorted(costs, reverse=True)


def _stored(written: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return list({r["request_id"]: r for b in reversed(written) for r in reversed(b)}.values())


async def _check(
    url: str,
    written: list[list[dict[str, Any]]],
    compactions: list[datetime | None],
    final: datetime,
    asked: list[Question],
) -> None:
    """Write the batches (compacting after some), compact at ``final`` and ask; then
    write the last batch once more as a late one and ask again."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            for table in RESET:
                await session.execute(text(f"DELETE FROM {table}"))
            await session.execute(text("UPDATE spend_running_state SET horizon = 0"))
        compaction = Compaction(db)
        *earlier, last = written
        for batch, moment in zip(earlier, [*compactions, *[None] * len(earlier)], strict=False):
            await write(db, batch)
            if moment is not None:
                # Running totals up to ``moment``'s hour; every later batch is
                # older than the clock, so it moves their horizon back.
                await compaction.catch_up(moment)
        await compaction.catch_up(final)
        await _ask(db, _stored(earlier), asked)
        await write(db, last)
        await _ask(db, _stored(written), asked)
        await compaction.catch_up(final)
        await _ask(db, _stored(written), asked)
        # The cells of each span hold every stored row exactly once.
        async with db.reader() as session:
            for span in SPANS:
                cells = (await session.execute(text(CELL_SUMS), {"s": span})).one()
                rows = (
                    await session.execute(text("SELECT COUNT(*), SUM(cost_pico) FROM spend"))
                ).one()
                assert (int(cells[0] or 0), int(cells[1] or 0)) == (int(rows[0]), int(rows[1] or 0))
    finally:
        await db.aclose()


def test_rollups_equal_sums_over_the_rows(database_url: str) -> None:
    async def migrate() -> None:
        db = Database(database_url)
        await db.migrate()
        await db.aclose()

    asyncio.run(migrate())

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        batches(),
        st.lists(st.one_of(st.none(), instants()), max_size=6),
        st.one_of(instants(), st.just(BASE + timedelta(days=4))),
        st.lists(questions, min_size=1, max_size=8),
    )
    def check(
        written: list[list[dict[str, Any]]],
        compactions: list[datetime | None],
        final: datetime,
        asked: list[Question],
    ) -> None:
        # The first record with a request id is the one stored.
        first: dict[str, dict[str, Any]] = {}
        for batch in written:
            for record in batch:
                first.setdefault(record["request_id"], record)
        normalized = [[first[r["request_id"]] for r in batch] for batch in written]
        asyncio.run(_check(database_url, normalized, compactions, final, asked))

    check()


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.none(), instants()),
    st.one_of(st.none(), instants()),
    st.one_of(
        st.none(),
        st.just(0),
        st.integers(0, WINDOW // HOUR + 2).map(lambda h: bucket(BASE, HOUR) + h * HOUR),
    ),
    st.lists(instants(), min_size=1, max_size=20),
)
def test_a_plan_is_the_range_exactly(
    since: datetime | None, until: datetime | None, horizon: int | None, probes: list[datetime]
) -> None:
    """Every moment of the range is counted once (the signs of the parts holding it add
    up to one), every other moment not at all; at most half an hour of rows is read at
    each end; running totals only before the horizon."""
    if since is not None and until is not None and since >= until:
        return
    parts = plan(since, until, horizon)
    for moment in [*probes, *(p for p in (since, until) if p is not None)]:
        inside = (since is None or moment >= since) and (until is None or moment < until)
        counted = sum(_sign(part) for part in parts if _holds(part, moment))
        assert counted == (1 if inside else 0), (since, until, horizon, moment, parts)
    for part in parts:
        if isinstance(part, Cells):
            for edge in (part.low, part.high):
                assert edge is None or edge % part.span == 0
        elif isinstance(part, Span):
            assert horizon is not None and part.high <= horizon and part.high % HOUR == 0
            assert part.low is None or (part.low % HOUR == 0 and part.low < part.high)
        elif not (since is not None and until is not None and until - since < timedelta(hours=1)):
            assert part.until - part.since <= timedelta(minutes=30)


def _sign(part: Rows | Cells | Span) -> int:
    return part.sign if isinstance(part, Rows) else 1


def _holds(part: Rows | Cells | Span, moment: datetime) -> bool:
    if isinstance(part, Span):
        start = bucket(moment, HOUR)
        return (part.low is None or start >= part.low) and start < part.high
    if isinstance(part, Rows):
        return part.since <= moment < part.until
    start = bucket(moment, part.span)
    return (part.low is None or start >= part.low) and (part.high is None or start < part.high)


def test_buckets_are_utc_hours_and_days() -> None:
    moment = datetime(2025, 3, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    assert instant(bucket(moment, HOUR)) == datetime(2025, 3, 30, 23, tzinfo=UTC)
    assert instant(bucket(moment, DAY)) == datetime(2025, 3, 30, tzinfo=UTC)
    east = moment.astimezone(datetime.now(UTC).astimezone().tzinfo)
    assert bucket(east, HOUR) == bucket(moment, HOUR)
