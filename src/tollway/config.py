"""The sections of the configuration: providers, models, prices, routing, timeouts, logs,
model access groups.

Each is a strict, frozen Pydantic model (an unknown key is a typo, so an error). Reading
them from files and the environment is ``settings.py``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tollway.bounds import MAX_MODEL_NAME, MAX_OUTPUT_TOKENS, MAX_PRICE_MTOK
from tollway.plugins.groups import Group, PluginError, names


def installed_plugin(group: Group, what: str, value: str) -> str:
    """``value`` if a plugin of that name is installed in ``group`` (built-ins are)."""
    try:
        known = names(group)
    except PluginError as exc:
        raise ValueError(str(exc)) from None
    if value not in known:
        raise ValueError(f"unknown {what} {value!r} (known: {', '.join(known)})")
    return value


class Strict(BaseModel):
    """Base for config sections: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    """Upstream timeouts in seconds."""

    connect: float = Field(5.0, gt=0)
    read: float = Field(600.0, gt=0, description="Wait for a response (headers and body).")
    stream_idle: float = Field(120.0, gt=0, description="Longest silence inside a stream.")
    pool: float = Field(
        60.0,
        gt=0,
        description="Wait for a free pooled connection (a busy gateway, not a sick upstream: "
        "never counted against the deployment's circuit breaker).",
    )


class ProviderConfig(Strict):
    """One upstream account: a provider type, its credential and endpoint."""

    type: str = Field(description="openai, anthropic, gemini, azure, bedrock, or a preset.")
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    project: str | None = None
    api_version: str | None = Field(None, description="Azure OpenAI api-version.")
    region: str | None = Field(None, description="AWS region (Bedrock).")
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    timeouts: Timeouts | None = None
    max_connections: int = Field(1024, ge=1, description="Open connections to this provider.")
    responses_api: bool = Field(
        True,
        description="Whether the server answers /v1/responses (type openai); false: Responses "
        "calls are translated to chat completions, as for every other provider type.",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return installed_plugin(Group.PROVIDERS, "provider type", value)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class Price(Strict):
    """USD per million tokens; overrides the price database for one model."""

    input_mtok: Decimal = Field(ge=0, le=MAX_PRICE_MTOK)
    output_mtok: Decimal = Field(ge=0, le=MAX_PRICE_MTOK)
    cache_read_mtok: Decimal | None = Field(None, ge=0, le=MAX_PRICE_MTOK)
    cache_write_mtok: Decimal | None = Field(None, ge=0, le=MAX_PRICE_MTOK)


class DeploymentConfig(Strict):
    """One place a model is served: a provider, its model id, a share of traffic."""

    provider: str
    model: str | None = Field(None, description="Upstream model id; defaults to the name.")
    weight: float = Field(1.0, gt=0, le=1_000_000, allow_inf_nan=False)
    rpm: int | None = Field(None, ge=1, description="This deployment's own request limit.")
    max_parallel: int | None = Field(None, ge=1)


class ModelConfig(Strict):
    """A client-facing model name served by one or more deployments."""

    name: str = Field(min_length=1, max_length=MAX_MODEL_NAME)
    provider: str | None = Field(None, description="Shorthand for one deployment.")
    model: str | None = Field(None, description="Upstream model id; defaults to the name.")
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    routing: str = Field(
        "weighted",
        description="weighted, least-busy, lowest-latency, or a strategy plugin's name.",
    )
    affinity: bool = Field(
        True,
        description="Keep each conversation on one deployment (warm upstream prompt caches).",
    )
    fallbacks: list[str] = Field(default_factory=list)
    context_fallbacks: list[str] = Field(
        default_factory=list, description="Models to try when the prompt is too long."
    )
    price: Price | None = None
    max_output_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_OUTPUT_TOKENS,
        description="Output limit given to a request that sets none (and assumed by budget "
        "holds); unset: the upstream's default, or default_max_output_tokens when budgeted.",
    )

    cache_ttl: int | None = Field(
        None, ge=1, le=86_400, description="Seconds this model's answers stay cached."
    )

    @field_validator("routing")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        return installed_plugin(Group.STRATEGIES, "routing strategy", value)

    @model_validator(mode="after")
    def _one_way_to_deploy(self) -> ModelConfig:
        if self.provider is None and not self.deployments:
            raise ValueError("give 'provider' (one deployment) or 'deployments'")
        if self.provider is not None and self.deployments:
            raise ValueError("give either 'provider' or 'deployments', not both")
        return self

    @property
    def upstream_model(self) -> str:
        """The model id sent upstream (single-deployment form)."""
        return self.model or self.name

    def all_deployments(self) -> list[DeploymentConfig]:
        """Deployments, with the shorthand form expanded."""
        if self.deployments:
            return self.deployments
        assert self.provider is not None
        return [DeploymentConfig(provider=self.provider, model=self.model)]


class RetryConfig(Strict):
    """Retries of retryable upstream failures (429, 5xx, timeouts, resets)."""

    attempts: int = Field(2, ge=0, description="Retries per model after the first try.")
    backoff_base: float = Field(0.25, ge=0, description="First backoff, seconds; doubles.")
    backoff_max: float = Field(8.0, ge=0)
    deadline: float = Field(120.0, gt=0, description="Give up retrying after this long.")


class CircuitConfig(Strict):
    """Per-deployment circuit breaker."""

    failures: int = Field(5, ge=1, description="Consecutive failures that open it.")
    cooldown: float = Field(30.0, gt=0, description="Seconds open before a probe.")


class LogConfig(Strict):
    """Structured logging."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    access: bool = True


class TelemetryConfig(Strict):
    """OpenTelemetry traces over OTLP/HTTP: off until an endpoint is given. Unset fields
    come from the standard ``OTEL_*`` variables (see settings.py)."""

    otlp_endpoint: str | None = Field(
        None,
        description="The collector's OTLP/HTTP base URL (http://host:4318); /v1/traces is "
        "added unless the URL already ends with it.",
    )
    otlp_traces_endpoint: str | None = Field(
        None, description="The full traces URL, used as given (wins over otlp_endpoint)."
    )
    service_name: str = Field("tollway", min_length=1, max_length=256)
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Sent with every export (a collector's token)."
    )
    resource_attributes: dict[str, str] = Field(
        default_factory=dict, description="Added to every span's resource (deployment.environment)."
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a client's traceparent decides for its own.",
    )
    enabled: bool = Field(True, description="false: no traces even with an endpoint.")

    @field_validator("otlp_endpoint", "otlp_traces_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def traces_url(self) -> str | None:
        """Where spans are sent, or None when tracing is off."""
        if not self.enabled:
            return None
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            base = self.otlp_endpoint.rstrip("/")
            return base if base.endswith("/v1/traces") else f"{base}/v1/traces"
        return None


# Model access groups: ``model_groups: {cheap: [gpt-4o-mini, "claude-haiku*"]}``. A key's
# or project's model scope names a group as ``group:<name>``: the prefix keeps a group
# from ever being mistaken for a model of the same name (model names are free text, and
# a scope entry must mean one thing whatever models are configured later).
GROUP_PREFIX = "group:"
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _member_problem(member: str) -> str | None:
    if not member or member != member.strip():
        return "must be a model name or glob without spaces at the ends"
    if len(member) > MAX_MODEL_NAME:
        return f"must be at most {MAX_MODEL_NAME} characters"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in member):
        return "must not contain control characters"
    return None


def flatten_groups(groups: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each group's model names and globs, with ``group:<name>`` members replaced by
    that group's, transitively; ValueError naming the group, for a bad name or member,
    an unknown group or a cycle."""
    for name, members in groups.items():
        if not GROUP_NAME.match(name):
            raise ValueError(
                f"model_groups.{name}: a group name is letters, digits, '.', '_' or '-' "
                "(at most 64, starting with a letter or digit)"
            )
        if not members:
            raise ValueError(f"model_groups.{name}: list at least one model name or glob")
        for index, member in enumerate(members):
            problem = _member_problem(member)
            if problem:
                raise ValueError(f"model_groups.{name}[{index}]: {problem}")
            ref = member.removeprefix(GROUP_PREFIX) if member.startswith(GROUP_PREFIX) else None
            if ref is not None and ref not in groups:
                known = ", ".join(sorted(groups))
                raise ValueError(
                    f"model_groups.{name}[{index}]: unknown group {ref!r} (known: {known})"
                )
    flat: dict[str, tuple[str, ...]] = {}

    def expand(name: str, path: tuple[str, ...]) -> tuple[str, ...]:
        if name in flat:
            return flat[name]
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ValueError(f"model_groups.{path[0]}: groups name each other in a cycle ({cycle})")
        out: dict[str, None] = {}  # ordered and without repeats
        for member in groups[name]:
            if member.startswith(GROUP_PREFIX):
                out.update(dict.fromkeys(expand(member.removeprefix(GROUP_PREFIX), (*path, name))))
            else:
                out[member] = None
        flat[name] = tuple(out)
        return flat[name]

    for name in groups:
        expand(name, ())
    return flat


def expand_scope(
    scope: Sequence[str] | None, groups: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """A model scope's names and globs with its groups expanded (None: every model). A
    group no longer configured expands to nothing: its entry then allows no model."""
    if scope is None:
        return None
    out: dict[str, None] = {}
    for entry in scope:
        if entry.startswith(GROUP_PREFIX):
            out.update(dict.fromkeys(groups.get(entry.removeprefix(GROUP_PREFIX), ())))
        else:
            out[entry] = None
    return tuple(out)


def scope_groups(scope: Sequence[str] | None) -> list[str]:
    """The group names a model scope refers to."""
    return [e.removeprefix(GROUP_PREFIX) for e in scope or () if e.startswith(GROUP_PREFIX)]
