"""Label values with a bound: every series a metric can grow is known from the config.

    model     the configured name the call resolved to (a glob entry such as ``claude-*``
              labels every name it matched); ``_other`` for a name nothing serves and
              ``_none`` before the body was read
    upstream  an upstream model id a deployment configures, else ``_other`` (the
              OpenTelemetry ``gen_ai_request_model``)
    provider  a configured provider name; ``_none`` when no upstream was reached and
              ``_cache`` when the response cache answered
    project   the project's name, for the first ``metrics.max_projects`` projects a
              worker process sees; later ones share ``_other``; ``_none`` for calls
              without a virtual key (the master key)
    deployment  ``provider/model`` of a configured deployment; deployments a glob entry
              made on the fly share ``provider/_other``

No label carries a virtual key. Placeholders start with ``_``, which a project name
cannot (admin/schemas.py) and a configured model name is unlikely to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.routing.router import is_pattern

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.settings import Settings

NONE = "_none"
OTHER = "_other"
CACHE = "_cache"

# OpenTelemetry's well-known ``gen_ai.provider.name`` values, by provider type
# (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/); any other type
# is named as itself.
_GEN_AI_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "groq": "groq",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
}

# OpenTelemetry's ``gen_ai.operation.name`` for each proxied endpoint.
GEN_AI_OPERATIONS = {
    "chat.completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "messages.count_tokens": "count_tokens",
}


class Labels:
    """Bounded label values for calls, attempts and deployments of one gateway."""

    def __init__(self, settings: Settings) -> None:
        models = settings.models
        self.upstream_models = frozenset(
            deployment.model or model.name
            for model in models
            for deployment in model.all_deployments()
            if deployment.model or not is_pattern(model.name)
        )
        self.deployments = frozenset(
            f"{deployment.provider}/{deployment.model or model.name}"
            for model in models
            for deployment in model.all_deployments()
            if deployment.model or not is_pattern(model.name)
        )
        self.gen_ai_providers = {
            name: _GEN_AI_PROVIDERS.get(provider.type, provider.type)
            for name, provider in settings.providers.items()
        }
        self._max_projects = settings.metrics.max_projects
        self._projects: set[str] = set()

    def model(self, record: CallRecord) -> str:
        """The configured model name the call resolved to."""
        plan = record.plan
        if plan is not None:
            return plan.config.name
        return OTHER if record.model is not None else NONE

    def provider(self, record: CallRecord) -> str:
        """The provider of the call's last attempt."""
        if record.cached:
            return CACHE
        return record.provider or NONE

    def upstream(self, model: str | None) -> str:
        """An upstream model id the config names, else the placeholder."""
        if model is None or model not in self.upstream_models:
            return OTHER
        return model

    def project(self, record: CallRecord) -> str:
        """The calling key's project, within the bound."""
        principal = record.principal
        key = principal.key if principal is not None else None
        if key is None:
            return NONE
        name = key.project_name
        if name in self._projects:
            return name
        if len(self._projects) < self._max_projects:
            self._projects.add(name)
            return name
        return OTHER

    def deployment(self, label: str) -> str:
        """A deployment's label, or its provider's placeholder."""
        if label in self.deployments:
            return label
        return f"{label.partition('/')[0]}/{OTHER}"
