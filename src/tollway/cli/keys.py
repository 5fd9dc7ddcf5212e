"""``tollway keys``: mint, list, show, update and revoke virtual keys."""

from __future__ import annotations

import shlex
from decimal import Decimal
from typing import Annotated, Any

import typer

from tollway.cli.common import JsonOption, die, group, parse_pairs, run, show

app = group("keys", "Virtual keys for clients and sandboxes.")
COLUMNS = ["id", "name", "key_prefix", "project_id", "status", "expires_at", "models", "metadata"]

Models = Annotated[
    str | None, typer.Option(help="Comma-separated model names or globs (default: all).")
]
Budget = Annotated[Decimal | None, typer.Option("--budget", help="Max spend in USD.")]
Period = Annotated[str | None, typer.Option("--budget-period", help="day or month.")]
Meta = Annotated[list[str] | None, typer.Option("--meta", help="Metadata name=value (repeat).")]
Rpm = Annotated[int | None, typer.Option(help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option(help="Tokens per minute.")]
Parallel = Annotated[int | None, typer.Option("--max-parallel", help="Concurrent requests.")]
MaxRequests = Annotated[int | None, typer.Option("--max-requests", help="Lifetime requests.")]


def _limits(
    models: str | None,
    budget: Decimal | None,
    period: str | None,
    rpm: int | None,
    tpm: int | None,
    parallel: int | None,
    max_requests: int | None,
    meta: list[str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "models": [m.strip() for m in models.split(",") if m.strip()] if models else None,
        "max_budget_usd": str(budget) if budget is not None else None,
        "budget_period": period,
        "rpm": rpm,
        "tpm": tpm,
        "max_parallel": parallel,
        "max_requests": max_requests,
        "metadata": parse_pairs(meta, "--meta") or None,
    }
    return {k: v for k, v in body.items() if v is not None}


def env_block(key: str, base_url: str) -> str:
    """Shell exports that point the common SDKs and coding agents at the gateway."""
    base = base_url.rstrip("/")
    values = {
        "OPENAI_BASE_URL": f"{base}/v1",
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": key,
        # Claude Code sends ANTHROPIC_AUTH_TOKEN as a bearer token; both are accepted.
        "ANTHROPIC_AUTH_TOKEN": key,
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for people.")],
    project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime: 90s, 15m, 24h, 7d.")] = None,
    models: Models = None,
    budget: Budget = None,
    budget_period: Period = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_parallel: Parallel = None,
    max_requests: MaxRequests = None,
    meta: Meta = None,
    env: Annotated[bool, typer.Option("--env", help="Print a ready-to-source block.")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Gateway URL as the sandbox sees it (default: --url).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Mint a key; its secret is printed this once."""
    body: dict[str, Any] = {"name": name, "project": project, "ttl": ttl}
    body = {k: v for k, v in body.items() if v is not None}
    body.update(_limits(models, budget, budget_period, rpm, tpm, max_parallel, max_requests, meta))
    created = run(ctx, "POST", "/keys", json=body)
    if env:
        print(env_block(created["key"], base_url or ctx.obj.url))
    elif as_json:
        show(created, True)
    else:
        show(created, False)
        typer.secho("Store the key now: it cannot be shown again.", err=True, fg="yellow")


@app.command("list")
def list_keys(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only usable / unusable keys.")
    ] = None,
    meta: Meta = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List keys, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if project:
        params["project"] = project
    if active is not None:
        params["active"] = str(active).lower()
    params.update({f"metadata.{k}": v for k, v in parse_pairs(meta, "--meta").items()})
    show(run(ctx, "GET", "/keys", params=params), as_json, COLUMNS, "keys")


@app.command("show")
def show_key(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Show one key."""
    show(run(ctx, "GET", f"/keys/{key_id}"), as_json)


@app.command("update")
def update(
    ctx: typer.Context,
    key_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    models: Models = None,
    budget: Budget = None,
    budget_period: Period = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_parallel: Parallel = None,
    max_requests: MaxRequests = None,
    meta: Meta = None,
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch the key on or off.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a key's name, models, limits, metadata or active flag."""
    body = _limits(models, budget, budget_period, rpm, tpm, max_parallel, max_requests, meta)
    if name is not None:
        body["name"] = name
    if active is not None:
        body["active"] = active
    if not body:
        die("nothing to update: give at least one option")
    show(run(ctx, "PATCH", f"/keys/{key_id}", json=body), as_json)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Revoke a key now, everywhere."""
    revoked = run(ctx, "DELETE", f"/keys/{key_id}")
    if as_json:
        show(revoked, True)
    else:
        print(f"revoked {revoked['id']} ({revoked['name']})")
