"""Journal segments made ahead of time and closed off the event loop still replay in
the order their records were written, and leave no empty files behind."""

from __future__ import annotations

from pathlib import Path

from tollway.metering.journal import JOURNAL_DIR, Journal, close_segments

SMALL = 4096


def replayed(data_dir: Path) -> list[object]:
    """What another process replays of a journal whose owner has gone."""
    reader = Journal(data_dir)
    try:
        records = [record["n"] for orphan in reader.orphans() for record in orphan.records]
    finally:
        reader.release()
    return records


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / JOURNAL_DIR).glob("spend-*.jsonl"))


def test_a_spare_taken_into_use_sorts_after_the_segment_before_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=SMALL)
    journal.prepare_spare()  # made before the first segment fills
    journal.append({"n": 0})
    full = journal.rotate()
    journal.append({"n": 1})  # into the spare
    assert journal.has_spare is False
    close_segments(full)
    journal.prepare_spare()
    for n in range(2, 60):  # past a segment's end: the spare takes the overflow
        journal.append({"n": n, "pad": "x" * 100})
    close_segments(journal.rotate())
    journal.close()
    journal.release()
    assert replayed(tmp_path) == list(range(60))


def test_a_record_bigger_than_the_spare_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=SMALL)
    journal.append({"n": 0})
    close_segments(journal.rotate())
    journal.prepare_spare()
    journal.append({"n": 1, "pad": "y" * (2 * SMALL)})
    close_segments(journal.rotate())
    journal.close()
    journal.release()
    assert replayed(tmp_path) == [0, 1]
    # One segment per record: the spare too small for the second one was removed.
    assert [path.stat().st_size > 0 for path in segments(tmp_path)] == [True, True]


def test_closing_removes_an_unused_spare(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=SMALL)
    journal.append({"n": 0})
    full = journal.rotate()
    journal.prepare_spare()
    kept = close_segments(full)
    assert journal.close() == []
    journal.release()
    assert segments(tmp_path) == kept  # only the one holding a record
