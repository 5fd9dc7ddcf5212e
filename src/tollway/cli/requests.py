"""``tollway requests``: the request log (list, show); ``tollway subjects``: export or
erase a data subject's calls (admin)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from tollway.cli.common import USAGE, JsonOption, MetaOption, die, group, parse_pairs, run, show
from tollway.cli.connection import connected
from tollway.cli.output import emit_json, emit_record, emit_table

app = group("requests", "The request log: one entry per call, newest first.")
subjects = group("subjects", "A data subject's calls, by key metadata: export or erase.")
COLUMNS = [
    "id",
    "created_at",
    "key_id",
    "model",
    "provider",
    "status",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
]
ATTEMPT_COLUMNS = ["provider", "model", "outcome", "status", "latency_ms"]


@app.command("list")
@connected
def list_requests(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Option(help="Key id.")] = None,
    project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
    model: Annotated[str | None, typer.Option(help="Model asked for.")] = None,
    provider: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="A status (429) or class (5xx).")] = None,
    since: Annotated[str | None, typer.Option("--from", help="ISO time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="ISO time (exclusive).")] = None,
    meta: MetaOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List calls, newest first (the next page's cursor is printed after the table)."""
    params: dict[str, Any] = {
        "key": key,
        "project": project,
        "model": model,
        "provider": provider,
        "status": status,
        "from": since,
        "to": until,
        "limit": limit,
        "cursor": cursor,
    }
    params = {name: value for name, value in params.items() if value is not None}
    params.update({f"metadata.{k}": v for k, v in parse_pairs(meta, "--meta").items()})
    page = run(ctx, "GET", "/requests", params=params)
    if as_json:
        emit_json(page)
        return
    emit_table(page["data"], COLUMNS, "requests")
    if page["next_cursor"]:
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


@app.command("show")
@connected
def show_request(ctx: typer.Context, request_id: str, as_json: JsonOption = False) -> None:
    """Show one call (by its x-request-id): its upstream attempts, captured bodies."""
    entry = run(ctx, "GET", f"/requests/{request_id}")
    if as_json:
        emit_json(entry)
        return
    attempts = entry.pop("attempt_log", None) or []
    emit_record(entry)
    emit_table(attempts, ATTEMPT_COLUMNS, "upstream attempts, in order")


def _subject(meta: list[str] | None) -> dict[str, str]:
    metadata = parse_pairs(meta, "--meta")
    if not metadata:
        die("name the subject with at least one --meta NAME=VALUE", USAGE)
    return metadata


@subjects.command("export")
@connected
def export(ctx: typer.Context, meta: MetaOption = None) -> None:
    """Print every call of the subject, with bodies, as JSON lines (audited)."""
    body: dict[str, Any] = {"metadata": _subject(meta), "limit": 1000}
    while True:
        page = run(ctx, "POST", "/subjects/export", json=body)
        for entry in page["data"]:
            emit_json_line(entry)
        if not page["next_cursor"]:
            return
        body["cursor"] = page["next_cursor"]


def emit_json_line(entry: dict[str, Any]) -> None:
    """One object per line (JSON Lines)."""
    sys.stdout.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")


@subjects.command("erase")
@connected
def erase(
    ctx: typer.Context,
    meta: MetaOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every call of the subject and its bodies (audited; spend totals stay)."""
    metadata = _subject(meta)
    if not yes:
        named = ", ".join(f"{k}={v}" for k, v in metadata.items())
        typer.confirm(f"Erase every call with metadata {named}?", abort=True)
    result = run(ctx, "POST", "/subjects/erase", json={"metadata": metadata})
    if as_json:
        show(result, True)
    else:
        print(
            f"erased {result['requests']} calls and {result['bodies']} bodies; "
            f"removed from {result['metadata_sets']} metadata sets of the spend rollups"
        )
