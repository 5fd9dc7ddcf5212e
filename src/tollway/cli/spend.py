"""``tollway spend``: requests, tokens and cost, grouped and filtered; ``tollway spend
quarantine``: the records the database refused."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import JsonOption, run
from tollway.cli.connection import connected, connected_group
from tollway.cli.output import emit_csv, emit_json, emit_table

app = typer.Typer(
    name="spend",
    help="Spend totals, most expensive first; `spend quarantine`: records the database refused.",
    invoke_without_command=True,
    subcommand_metavar="[quarantine]",  # the report needs no subcommand
)

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


@app.callback()
@connected_group
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
) -> None:
    """Show spend totals (most expensive first)."""
    if ctx.invoked_subcommand is not None:
        return
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


QUARANTINE_COLUMNS = ["id", "created_at", "request_id", "reason"]


@app.command("quarantine")
@connected
def quarantine(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Spend records the database refused, kept with the reason (never lost)."""
    listing = run(ctx, "GET", "/spend/quarantine", params={"limit": limit})
    if as_json:
        emit_json(listing)
        return
    emit_table(listing["data"], QUARANTINE_COLUMNS, f"quarantine ({listing['total']} records)")
    if listing["file_entries"]:
        typer.echo(f"{listing['file_entries']} more in the data dir's quarantine.jsonl")
