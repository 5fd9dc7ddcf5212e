"""What the commands that talk to a running gateway share: options, calls, output."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal, NoReturn

import typer

from tollway.cli.client import ApiError
from tollway.cli.connection import connected_group, connection
from tollway.cli.output import emit_json, emit_record, emit_table

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

# The limits keys and projects share.
BudgetOption = Annotated[
    Decimal | None, typer.Option("--budget", metavar="USD", help="Max spend in USD.")
]
PeriodOption = Annotated[
    Literal["day", "month"] | None,
    typer.Option(
        "--budget-period", help="Reset the budget each day or month, UTC (default: never)."
    ),
]
RpmOption = Annotated[int | None, typer.Option(help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option(help="Tokens per minute.")]
ParallelOption = Annotated[int | None, typer.Option("--max-parallel", help="Concurrent requests.")]
MetaOption = Annotated[
    list[str] | None,
    typer.Option("--meta", metavar="NAME=VALUE", help="Metadata field (repeat)."),
]

ModelsOption = Annotated[
    str | None,
    typer.Option(
        metavar="NAMES",
        help="The models it may call: names, globs or group:NAME, comma-separated (default: all).",
    ),
]
GuardOption = Annotated[
    list[str] | None,
    typer.Option(
        "--guard",
        metavar="NAME=ACTION",
        help="A guard's action: block, redact, flag or off (repeat; e.g. pii=redact).",
    ),
]
GuardsOption = Annotated[
    str | None,
    typer.Option(
        "--guards",
        metavar="JSON",
        help='Guards with options, as a JSON object of name -> {"action": ..., options}.',
    ),
]

USAGE = 2  # the exit code of a command line that cannot work as written


def die(message: str, code: int = 1) -> NoReturn:
    """Exit with a one-line reason: 1 for a failure, ``USAGE`` for a bad command line."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def run(ctx: typer.Context, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API, turning failures into a one-line error and exit code 1."""
    try:
        return connection(ctx).api().call(method, path, **kwargs)
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
            die(f"{option} takes name=value, got {pair!r}", USAGE)
        out[name] = value
    return out


def model_scope(models: str | None) -> list[str] | None:
    """A comma-separated ``--models`` value as a list."""
    return [m.strip() for m in models.split(",") if m.strip()] if models else None


def guard_settings(guard: list[str] | None, guards: str | None) -> dict[str, Any] | None:
    """``--guards JSON`` with each ``--guard NAME=ACTION`` setting that guard's action."""
    out: dict[str, Any] = {}
    if guards is not None:
        try:
            out = json.loads(guards)
        except ValueError:
            die(f"--guards takes a JSON object, got {guards!r}", USAGE)
        if not isinstance(out, dict):
            die("--guards takes a JSON object of guard name -> settings", USAGE)
    for name, action in parse_pairs(guard, "--guard").items():
        current = out.get(name)
        out[name] = {**(current if isinstance(current, dict) else {}), "action": action}
    return out if guards is not None or out else None


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
        die("nothing to update: give at least one option (see --help)", USAGE)
    show(run(ctx, "PATCH", path, json=body), as_json)


def group(name: str, help_text: str) -> typer.Typer:
    """A group of gateway commands, taking the connection options before its subcommand."""
    app = typer.Typer(name=name, help=help_text, no_args_is_help=True)
    app.callback()(connected_group(_before_subcommand))
    return app


def _before_subcommand(ctx: typer.Context) -> None:
    """Nothing to do: the connection options are recorded by ``connected_group``."""
