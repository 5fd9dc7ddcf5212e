"""Options shared by the commands that talk to a running gateway."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tollway.cli.client import DEFAULT_URL, Api, ApiError, resolve_master_key
from tollway.cli.output import emit_json, emit_record, emit_table

UrlOption = Annotated[
    str, typer.Option("--url", envvar="TOLLWAY_URL", help="The gateway's address.")
]
MasterKeyOption = Annotated[
    str | None,
    typer.Option(
        "--master-key",
        envvar="TOLLWAY_MASTER_KEY",
        help="Master or admin key (default: the one generated in the data dir).",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path, typer.Option("--data-dir", envvar="TOLLWAY_DATA_DIR", help="The gateway's data dir.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

# The limits keys and projects share.
BudgetOption = Annotated[Decimal | None, typer.Option("--budget", help="Max spend in USD.")]
PeriodOption = Annotated[str | None, typer.Option("--budget-period", help="day or month.")]
RpmOption = Annotated[int | None, typer.Option(help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option(help="Tokens per minute.")]
ParallelOption = Annotated[int | None, typer.Option("--max-parallel", help="Concurrent requests.")]
MetaOption = Annotated[
    list[str] | None, typer.Option("--meta", help="Metadata name=value (repeat).")
]


def die(message: str) -> NoReturn:
    """Exit non-zero with a one-line reason."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def connect(
    ctx: typer.Context,
    url: UrlOption = DEFAULT_URL,
    master_key: MasterKeyOption = None,
    data_dir: DataDirOption = Path(".tollway"),
) -> None:
    """Group callback: build the API client once for the subcommands."""
    try:
        ctx.obj = Api(url, resolve_master_key(master_key, data_dir))
    except ApiError as exc:
        die(str(exc))


def run(ctx: typer.Context, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API, turning failures into a one-line error and exit code 1."""
    api: Api = ctx.obj
    try:
        return api.call(method, path, **kwargs)
    except ApiError as exc:
        die(str(exc))


def show(data: Any, as_json: bool, columns: list[str] | None = None, title: str = "") -> None:
    """JSON for scripts; a table (lists) or aligned fields (objects) for people."""
    if as_json:
        emit_json(data)
    elif isinstance(data, list):
        emit_table(data, columns or (list(data[0]) if data else []), title)
    else:
        emit_record(data)


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``k=v`` options into a dict."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            die(f"{option} takes name=value, got {pair!r}")
        out[name] = value
    return out


def given(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields whose option was given (not None)."""
    return {name: value for name, value in fields.items() if value is not None}


def limit_fields(
    budget: Decimal | None,
    period: str | None,
    rpm: int | None,
    tpm: int | None,
    parallel: int | None,
    meta: list[str] | None,
) -> dict[str, Any]:
    """The given limit and metadata options as request body fields."""
    return given(
        {
            "max_budget_usd": str(budget) if budget is not None else None,
            "budget_period": period,
            "rpm": rpm,
            "tpm": tpm,
            "max_parallel": parallel,
            "metadata": parse_pairs(meta, "--meta") or None,
        }
    )


def patch(ctx: typer.Context, path: str, body: dict[str, Any], as_json: bool) -> None:
    """Send the given fields as an update and show the result."""
    if not body:
        die("nothing to update: give at least one option")
    show(run(ctx, "PATCH", path, json=body), as_json)


def group(name: str, help_text: str) -> typer.Typer:
    """A command group that connects to the gateway before its subcommands run."""
    app = typer.Typer(name=name, help=help_text, no_args_is_help=True)
    app.callback()(connect)
    return app


Command = Callable[..., None]
