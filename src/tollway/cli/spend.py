"""``tollway spend``: requests, tokens and cost, grouped and filtered."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tollway.cli.client import DEFAULT_URL
from tollway.cli.common import (
    DataDirOption,
    JsonOption,
    MasterKeyOption,
    UrlOption,
    connect,
    run,
)
from tollway.cli.output import emit_csv, emit_json, emit_table

COLUMNS = [
    "group",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_requests",
    "estimated_requests",
]


def spend(
    ctx: typer.Context,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by", "-g", help="key, project, model, provider, day, metadata.<field>."
        ),
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="ISO time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="ISO time (exclusive).")] = None,
    key: Annotated[str | None, typer.Option(help="Only this key id.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV output.")] = False,
    url: UrlOption = DEFAULT_URL,
    master_key: MasterKeyOption = None,
    data_dir: DataDirOption = Path(".tollway"),
) -> None:
    """Show spend totals (most expensive first)."""
    connect(ctx, url, master_key, data_dir)
    params: dict[str, Any] = {
        "group_by": group_by,
        "from": since,
        "to": until,
        "key": key,
        "project": project,
    }
    report = run(ctx, "GET", "/spend", params={k: v for k, v in params.items() if v})
    if as_json:
        emit_json(report)
        return
    rows = report["groups"] if group_by else []
    rows = [*rows, {"group": "TOTAL", **report["totals"]}]
    if as_csv:
        emit_csv(rows, COLUMNS)
    else:
        emit_table(rows, COLUMNS, f"spend by {group_by}" if group_by else "spend")
