"""Readable tables for people, JSON and CSV for scripts."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def emit_json(data: Any) -> None:
    """Print JSON for scripts."""
    print(json.dumps(data, indent=2, default=str))


def emit_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    print(buffer.getvalue(), end="")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """Print a table for people."""
    table = Table(title=title or None, caption=None if rows else "(none)", show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    # A terminal's own width; piped, wide enough that ids and times are never folded.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def emit_record(record: dict[str, Any]) -> None:
    """Print one object as aligned field/value lines."""
    width = max((len(k) for k in record), default=0)
    for key, value in record.items():
        print(f"{key.ljust(width)}  {_cell(value)}")
