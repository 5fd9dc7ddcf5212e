"""``tollway projects``: groups of keys with shared limits and credentials."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import (
    BudgetOption,
    GuardOption,
    GuardsOption,
    JsonOption,
    MetaOption,
    ModelsOption,
    ParallelOption,
    PeriodOption,
    RpmOption,
    TpmOption,
    given,
    group,
    guard_settings,
    limit_fields,
    model_scope,
    parse_pairs,
    patch,
    run,
    show,
)
from tollway.cli.connection import connected

app = group("projects", "Projects: budgets, limits and credentials shared by keys.")
COLUMNS = [
    "id",
    "name",
    "active",
    "max_budget_usd",
    "budget_period",
    "models",
    "credential_providers",
]

CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        metavar="PROVIDER=KEY",
        help="A provider's API key for this project's keys (repeat).",
    ),
]


CorsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--cors-origin",
        metavar="ORIGIN",
        help="A browser origin its keys may be used from: https://app.example.com, "
        "http://localhost:3000, or * for any (repeat).",
    ),
]
CacheOption = Annotated[
    bool | None, typer.Option("--cache/--no-cache", help="Cache responses for its keys.")
]
CacheTtlOption = Annotated[
    int | None,
    typer.Option("--cache-ttl", metavar="SECONDS", help="How long a cached answer is kept."),
]


CaptureOption = Annotated[
    bool | None,
    typer.Option(
        "--capture/--no-capture",
        help="Keep its calls' request and response bodies in the request log (secrets redacted).",
    ),
]
CaptureBytesOption = Annotated[
    int | None,
    typer.Option("--capture-bytes", metavar="BYTES", help="How much of each body is kept."),
]


def _capture(capture: bool | None, size: int | None) -> dict[str, Any] | None:
    """--capture / --no-capture / --capture-bytes as the ``capture`` field (a size implies
    --capture)."""
    if capture is None and size is None:
        return None
    return given({"enabled": capture if capture is not None else True, "max_bytes": size})


def _credentials(credential: list[str] | None) -> dict[str, str] | None:
    return parse_pairs(credential, "--credential") or None


def _cache(cache: bool | None, ttl: int | None) -> dict[str, Any] | None:
    """--cache / --no-cache / --cache-ttl as the ``cache`` field (a TTL implies --cache)."""
    if cache is None and ttl is None:
        return None
    return given({"enabled": cache if cache is not None else True, "ttl": ttl})


def _policies(
    models: str | None,
    guard: list[str] | None,
    guards: str | None,
    cors_origin: list[str] | None,
    cache: bool | None,
    cache_ttl: int | None,
) -> dict[str, Any]:
    return given(
        {
            "models": model_scope(models),
            "guards": guard_settings(guard, guards),
            "cors_origins": cors_origin,
            "cache": _cache(cache, cache_ttl),
        }
    )


@app.command("create")
@connected
def create(
    ctx: typer.Context,
    name: str,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    meta: MetaOption = None,
    credential: CredentialOption = None,
    models: ModelsOption = None,
    guard: GuardOption = None,
    guards: GuardsOption = None,
    cors_origin: CorsOption = None,
    cache: CacheOption = None,
    cache_ttl: CacheTtlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project."""
    body = (
        limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta)
        | _policies(models, guard, guards, cors_origin, cache, cache_ttl)
        | given({"name": name, "credentials": _credentials(credential)})
    )
    show(run(ctx, "POST", "/projects", json=body), as_json)


@app.command("list")
@connected
def list_projects(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List projects."""
    show(run(ctx, "GET", "/projects"), as_json, COLUMNS, "projects")


@app.command("show")
@connected
def show_project(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Show one project (by id or name)."""
    show(run(ctx, "GET", f"/projects/{project}"), as_json)


@app.command("update")
@connected
def update(
    ctx: typer.Context,
    project: str,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    meta: MetaOption = None,
    credential: CredentialOption = None,
    models: ModelsOption = None,
    guard: GuardOption = None,
    guards: GuardsOption = None,
    cors_origin: CorsOption = None,
    cache: CacheOption = None,
    cache_ttl: CacheTtlOption = None,
    capture: CaptureOption = None,
    capture_bytes: CaptureBytesOption = None,
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch all its keys.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project's limits, policies, credentials or active flag."""
    body = (
        limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta)
        | _policies(models, guard, guards, cors_origin, cache, cache_ttl)
        | given(
            {
                "credentials": _credentials(credential),
                "active": active,
                "capture": _capture(capture, capture_bytes),
            }
        )
    )
    patch(ctx, f"/projects/{project}", body, as_json)


@app.command("revoke-keys")
@connected
def revoke_keys(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Revoke every key of a project."""
    result = run(ctx, "POST", f"/projects/{project}/revoke-keys")
    if as_json:
        show(result, True)
    else:
        print(f"revoked {result['revoked']} keys of {result['project_id']}")
