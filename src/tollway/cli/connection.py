"""Where the gateway is and which key to use.

``--url``, ``--master-key`` and ``--data-dir`` are accepted by every gateway group and by
each of its commands (``tollway keys --url U create`` and ``tollway keys create --url U``
alike). Their values are only recorded while the command line is parsed; the key is
looked up and the client built when a command first calls the API, so ``--help`` and
usage errors never need a key, a config or a running gateway.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from tollway.cli.client import DEFAULT_URL, Api, ApiError

DEFAULT_DATA_DIR = Path(".tollway")
PANEL = "Connection"

# Environment variables and defaults are in the text (parentheses: brackets are Rich
# markup) because a command's copies of the options do not read the environment.
_URL_HELP = f"The gateway's address (env TOLLWAY_URL, default {DEFAULT_URL})."
_KEY_HELP = (
    "Master or admin key (env TOLLWAY_MASTER_KEY, default: the key the gateway generated "
    "in its data dir)."
)
_DIR_HELP = (
    "The gateway's data dir, for its generated key (env TOLLWAY_DATA_DIR, default .tollway)."
)


def _options(read_env: bool) -> list[inspect.Parameter]:
    """The three options as keyword-only parameters for a command's signature."""

    def option(decl: str, env: str, kind: type, help_text: str, **extra: Any) -> Any:
        info = typer.Option(
            decl,
            envvar=env if read_env else None,
            show_envvar=False,
            show_default=False,
            help=help_text,
            rich_help_panel=PANEL,
            **extra,
        )
        return Annotated[kind | None, info]

    specs = [
        ("url", option("--url", "TOLLWAY_URL", str, _URL_HELP, metavar="URL")),
        ("master_key", option("--master-key", "TOLLWAY_MASTER_KEY", str, _KEY_HELP, metavar="KEY")),
        ("data_dir", option("--data-dir", "TOLLWAY_DATA_DIR", Path, _DIR_HELP, metavar="DIR")),
    ]
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint in specs
    ]


# A group's options also read the environment; a command's do not, so that a value typed
# after the subcommand wins over both the environment and a value typed before it.
_GROUP_OPTIONS = _options(read_env=True)
_COMMAND_OPTIONS = _options(read_env=False)
_NAMES = [parameter.name for parameter in _GROUP_OPTIONS]


@dataclass
class Connection:
    """The connection options as given so far; ``api()`` resolves them once."""

    url: str | None = None
    master_key: str | None = None
    data_dir: Path | None = None
    _api: Api | None = field(default=None, init=False, repr=False)

    def record(self, values: dict[str, Any]) -> None:
        """Keep the values given at this level of the command line (later levels win)."""
        for name, value in values.items():
            if value is not None:
                setattr(self, name, value)

    @property
    def resolved_url(self) -> str:
        """The gateway's address, checked."""
        url = (self.url or DEFAULT_URL).rstrip("/")
        if not is_http_url(url):
            raise typer.BadParameter(
                f"expected http(s)://host[:port], got {url!r}",
                param_hint="'--url' (or TOLLWAY_URL)",
            )
        return url

    def api(self) -> Api:
        """The client, built on first use."""
        if self._api is None:
            url = self.resolved_url
            self._api = Api(url, self.master_key or self._generated_key())
        return self._api

    def _generated_key(self) -> str:
        data_dir = self.data_dir or DEFAULT_DATA_DIR
        # Imported here: it loads the settings machinery, which only this fallback needs.
        from tollway.auth.master import MASTER_KEY_FILE

        path = data_dir / MASTER_KEY_FILE
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = ""
        except OSError as exc:
            raise ApiError(
                f"cannot read the master key in {path} ({exc.strerror}): pass --master-key "
                f"or set TOLLWAY_MASTER_KEY"
            ) from None
        if key:
            return key
        if self.data_dir is None:
            raise ApiError(
                "no master key: pass --master-key, set TOLLWAY_MASTER_KEY, or run where the "
                f"gateway's data dir is (./{DEFAULT_DATA_DIR})"
            )
        raise ApiError(
            f"no master key in {path}: pass --master-key, set TOLLWAY_MASTER_KEY, or point "
            f"--data-dir at the gateway's data dir"
        )


def is_http_url(url: str) -> bool:
    """Whether ``url`` is http(s)://host[:port][/path] with a numeric port, if any."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


Command = Callable[..., None]


def connected(command: Command) -> Command:
    """A gateway command that also takes the connection options after its name."""
    return _accepting(command, _COMMAND_OPTIONS)


def connected_group(callback: Command) -> Command:
    """A gateway group's callback that takes the connection options (and their env vars)."""
    return _accepting(callback, _GROUP_OPTIONS)


def _accepting(command: Command, options: list[inspect.Parameter]) -> Command:
    signature = inspect.signature(command, eval_str=True)
    if "ctx" not in signature.parameters:
        raise TypeError(f"{command.__name__} needs a ctx: typer.Context parameter")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in _NAMES}
        kwargs["ctx"].ensure_object(Connection).record(values)
        command(**kwargs)

    # Typer reads a command's options from its signature and type hints: extend both.
    parameters = [*signature.parameters.values(), *options]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **command.__annotations__,
        **{option.name: option.annotation for option in options},
    }
    return wrapper


def connection(ctx: typer.Context) -> Connection:
    """The options recorded for this command line."""
    return ctx.ensure_object(Connection)
