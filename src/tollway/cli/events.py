"""``tollway events``: the event sinks, and the events they gave up on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import JsonOption, group, run, show
from tollway.cli.connection import connected
from tollway.cli.output import emit_json, emit_table

app = group("events", "Event export: the sinks and their dead letters.")
DEAD_LETTER_COLUMNS = ["failed_at", "sink", "type", "event_id", "attempts", "error"]


@app.command("sinks")
@connected
def sinks(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The sinks events are delivered to."""
    show(run(ctx, "GET", "/events/sinks"), as_json, ["name", "type", "events", "delivered"])


@app.command("dead-letters")
@connected
def dead_letters(
    ctx: typer.Context,
    sink: Annotated[str | None, typer.Option(help="Only this sink.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Events a sink refused too many times (kept in the data dir)."""
    params: dict[str, Any] = {"limit": limit, **({"sink": sink} if sink else {})}
    listing = run(ctx, "GET", "/events/dead-letters", params=params)
    if as_json:
        emit_json(listing)
        return
    rows = [
        {**entry, "type": entry["event"].get("type"), "event_id": entry["event"].get("id")}
        for entry in listing["data"]
    ]
    emit_table(rows, DEAD_LETTER_COLUMNS, f"dead letters ({listing['total']})")
    typer.echo(f"kept in {listing['file']}")
