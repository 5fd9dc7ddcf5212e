"""Configuration: one typed model, loaded from YAML and the environment.

This is the only module that reads the process environment. Precedence, highest first:
``TOLLWAY_...`` environment variables (nested fields with ``__``, e.g.
``TOLLWAY_TIMEOUTS__CONNECT=3``), then the YAML file (``--config``, ``TOLLWAY_CONFIG`` or
``./tollway.yaml``, with ``${VAR}`` and ``${VAR:-default}`` interpolation), then defaults.
With no file at all, providers come from the standard variables that are set
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``). The standard OpenTelemetry variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...) fill in what the file's
``telemetry`` section leaves unset (``config_otel.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tollway.config import (
    CircuitConfig,
    LogConfig,
    ModelConfig,
    ProviderConfig,
    RetryConfig,
    TelemetryConfig,
    Timeouts,
    flatten_groups,
)
from tollway.config_otel import telemetry_from_environ
from tollway.config_policies import CacheConfig, check_guards
from tollway.config_retention import RetentionConfig
from tollway.config_serving import TlsConfig
from tollway.events.config import EventsConfig
from tollway.store.pool import DatabasePool
from tollway.telemetry.metrics_config import MetricsConfig
from tollway.ui.config import UiConfig

DEFAULT_CONFIG_FILE = Path("tollway.yaml")
MIB = 1024 * 1024


class ConfigError(Exception):
    """The configuration cannot be used; the message names the field."""


class Dialect(StrEnum):
    """An API dialect: clients speak OpenAI or Anthropic; providers may serve any."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    BEDROCK = "bedrock"


class Settings(BaseSettings):
    """Everything Tollway needs to start."""

    model_config = SettingsConfigDict(
        env_prefix="TOLLWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    master_key: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        None,
        description="Server secret for key hashing, credential encryption and the audit "
        "chain. Generated into the data dir when unset; set it when several hosts share "
        "one database.",
    )
    public_url: str | None = Field(
        None, description="Base URL clients use to reach the gateway (for `keys create --env`)."
    )
    data_dir: Path = Path(".tollway")
    database_url: str | None = None
    database_pool: DatabasePool = Field(
        default_factory=DatabasePool,
        description="PostgreSQL connections per worker process (size, max_overflow, timeout) "
        "and prepared_statements: false behind PgBouncer in transaction pooling mode.",
    )
    redis_url: str | None = None
    redis_prefix: str = Field("tollway:", description="Prefix of every Redis key Tollway uses.")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    tls: TlsConfig | None = Field(None, description="Serve HTTPS: {cert_file, key_file}.")
    shutdown_grace_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="On SIGTERM, how long calls and streams in flight may run to their end "
        "before they are cut (and still metered).",
    )
    config_watch_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="How often the config file is checked for changes to reload (0: only "
        "on SIGHUP).",
    )
    max_body_bytes: int = Field(32 * MIB, ge=1024)
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client may take to send its whole request body."
    )
    max_response_bytes: int = Field(
        64 * MIB, ge=1024, description="Largest upstream answer relayed (502 beyond)."
    )
    max_event_bytes: int = Field(
        8 * MIB, ge=1024, description="Largest single event in an upstream stream."
    )
    database_grace: float = Field(
        30.0,
        ge=0,
        le=300,
        description="While the database is unreachable, keys verified within this many "
        "seconds keep working (spend keeps journaling locally); past it, 503.",
    )
    rate_limits_fail_open: bool = Field(
        False,
        description="With Redis unreachable, admit calls of rate-limited keys instead of "
        "refusing them (budgets always fail closed).",
    )
    default_max_output_tokens: int = Field(
        32_768, ge=1, description="Output limit assumed for budgets when nothing says otherwise."
    )
    timeouts: Timeouts = Timeouts()
    retry: RetryConfig = RetryConfig()
    circuit: CircuitConfig = CircuitConfig()
    log: LogConfig = LogConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(default_factory=list)
    model_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Named sets of model names and globs that key and project model "
        "scopes use as 'group:<name>'; a member 'group:<other>' includes another group.",
    )
    guards: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Guards for every call, each {action: block|redact|flag|off, ...options}; "
        "a project's or key's own setting of a guard replaces this one.",
    )
    cache: CacheConfig = CacheConfig()
    retention: RetentionConfig = RetentionConfig()
    metrics: MetricsConfig = MetricsConfig()
    events: EventsConfig = Field(
        default_factory=EventsConfig,
        description="Event export: a JSONL file, signed webhooks, a Redis stream, plugins.",
    )
    telemetry: TelemetryConfig = TelemetryConfig()
    ui: UiConfig = Field(
        default_factory=UiConfig,
        description="The admin UI at /ui: session lifetime, cookie flags, OIDC sign-in.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("must be sqlite:///path or postgresql://user@host/db")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("must be redis://host:port/db (or rediss://, unix://)")
        return value

    @field_validator("guards")
    @classmethod
    def _guards_known(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return check_guards(value)

    @field_validator("model_groups")
    @classmethod
    def _groups_resolve(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        flatten_groups(value)  # names, members, references and cycles, or ValueError
        return value

    @model_validator(mode="after")
    def _models_reference_providers(self) -> Settings:
        seen: set[str] = set()
        for index, model in enumerate(self.models):
            for deployment in model.all_deployments():
                if deployment.provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none configured"
                    where = "provider" if model.provider else "deployments.provider"
                    raise ValueError(
                        f"models[{index}].{where}: unknown provider {deployment.provider!r} "
                        f"(known: {known})"
                    )
            if model.name in seen:
                raise ValueError(f"models[{index}].name: duplicate model name {model.name!r}")
            seen.add(model.name)
        names = {m.name for m in self.models}
        for index, model in enumerate(self.models):
            for field in ("fallbacks", "context_fallbacks"):
                for fallback in getattr(model, field):
                    if fallback not in names:
                        raise ValueError(f"models[{index}].{field}: unknown model {fallback!r}")
        return self

    @model_validator(mode="after")
    def _cache_backend_reachable(self) -> Settings:
        if self.cache.backend == "redis" and not self.redis_url:
            raise ValueError("cache.backend: redis needs redis_url")
        return self

    @model_validator(mode="after")
    def _metrics_port_apart(self) -> Settings:
        if self.metrics.port is not None and self.metrics.port == self.port:
            raise ValueError("metrics.port: must differ from port (the gateway's own)")
        return self

    @model_validator(mode="after")
    def _event_stream_reachable(self) -> Settings:
        if self.events.redis_stream is not None and not self.redis_url:
            raise ValueError("events.redis_stream: needs redis_url")
        return self

    @property
    def database_path_url(self) -> str:
        """The database URL, defaulting to SQLite under the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'tollway.db'}"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Providers enabled from the standard variables when there is no config file, and the
# model-name patterns each one serves by default.
_ENV_PROVIDERS: dict[str, tuple[Dialect, str, list[str]]] = {
    "openai": (
        Dialect.OPENAI,
        "OPENAI_API_KEY",
        ["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*", "codex-*"],
    ),
    "anthropic": (Dialect.ANTHROPIC, "ANTHROPIC_API_KEY", ["claude-*"]),
}


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in raw config text."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            return default if default is not None else ""
        return value

    return _VAR.sub(substitute, text)


def _config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    from_env = environ.get("TOLLWAY_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"TOLLWAY_CONFIG points to a missing file: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_yaml(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_yaml_where(exc)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    # Substituting into parsed values (not the raw text) keeps a secret containing YAML
    # syntax (': ', '#', quotes, newlines) from changing the file's structure.
    # Empty strings left by unset ${VAR}s mean "not set".
    return _drop_empty(_substitute(raw, environ))


def _substitute(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, environ)
    if isinstance(value, dict):
        return {key: _substitute(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, environ) for item in value]
    return value


def _yaml_where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "syntax error"
    if mark is None:
        return f": {problem}"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _drop_empty(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out[key] = _drop_empty(item)
        elif item != "":
            out[key] = item
    return out


def _providers_from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    for name, (dialect, variable, patterns) in _ENV_PROVIDERS.items():
        key = environ.get(variable)
        if not key:
            continue
        providers[name] = {"type": dialect.value, "api_key": key}
        base = environ.get(f"{name.upper()}_BASE_URL")
        if base:
            providers[name]["base_url"] = base
        models.extend({"name": pattern, "provider": name} for pattern in patterns)
    return {"providers": providers, "models": models} if providers else {}


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith(f"{where}:") or ":" in message.split(" ")[0]:
            lines.append(message)
        else:
            lines.append(f"{where}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def config_file(explicit: Path | None = None) -> Path | None:
    """The config file settings are read from: ``explicit``, ``TOLLWAY_CONFIG``, or
    ``./tollway.yaml`` when present; None when there is none."""
    return _config_path(explicit, os.environ)


def load_settings(
    config_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Load and validate settings; raises ConfigError naming the offending field."""
    path = _config_path(config_path, os.environ)
    data = _read_yaml(path, os.environ) if path is not None else _providers_from_environ(os.environ)
    if isinstance(data.get("telemetry", {}), dict):
        try:
            telemetry = telemetry_from_environ(data.get("telemetry", {}), os.environ)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        data.update({"telemetry": telemetry} if telemetry else {})
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
