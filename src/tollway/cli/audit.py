"""``tollway audit``: read and verify the hash-chained audit log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import JsonOption, die, group, run, show
from tollway.cli.connection import connected

app = group("audit", "The tamper-evident audit log.")
COLUMNS = ["seq", "ts", "actor", "action", "target_type", "target_id"]


@app.command("list")
@connected
def list_entries(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    target: Annotated[str | None, typer.Option(help="Key or project id.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="ISO time.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="ISO time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List entries, newest first."""
    params: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "target": target,
        "from": since,
        "to": until,
        "limit": limit,
    }
    entries = run(ctx, "GET", "/audit", params={k: v for k, v in params.items() if v})
    show(entries, as_json, COLUMNS, "audit log")


@app.command("verify")
@connected
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check the whole chain; exits 1 when it is broken."""
    result = run(ctx, "GET", "/audit/verify")
    if as_json:
        show(result, True)
    if not result["ok"]:
        if not as_json:
            die(
                f"audit chain broken at entry {result['broken_at']}: {result['reason']} "
                f"({result['entries']} entries verified before it)"
            )
        raise typer.Exit(1)
    if not as_json:
        print(f"ok: {result['entries']} entries verified")
