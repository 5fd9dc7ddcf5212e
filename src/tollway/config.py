"""The sections of the configuration: providers, models, prices, routing, timeouts, logs.

Each is a strict, frozen Pydantic model (an unknown key is a typo, so an error). Reading
them from files and the environment is ``settings.py``'s job.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tollway.bounds import MAX_MODEL_NAME, MAX_PRICE_MTOK


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
        from tollway.providers.registry import PROVIDER_TYPES  # the registry imports this module

        if value not in PROVIDER_TYPES:
            raise ValueError(
                f"unknown provider type {value!r} (known: {', '.join(PROVIDER_TYPES)})"
            )
        return value

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
    routing: Literal["weighted", "least-busy", "lowest-latency"] = "weighted"
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
        None, ge=1, description="Output limit assumed when a request sets none (budgets)."
    )

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
