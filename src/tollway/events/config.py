"""The ``events:`` section of the configuration: where events go and what produces them.

    events:
      file: /var/log/tollway/events.jsonl
      webhooks:
        - {url: https://hooks.example.com/tollway, secret: "${HOOK_SECRET}", events: [key.*]}
      redis_stream: events
      sinks:                                # third-party sinks, by plugin type
        - {type: kafka, name: bus, ...}
      budget_thresholds: [50, 80, 100]

Every sink takes ``events`` (types or globs; default all) and the retry options of
``telemetry/sinks.Delivery``. Sinks are checked against what is installed here; their
own options are checked when the gateway builds them (a bad one stops startup).
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from tollway.config import Strict, installed_plugin
from tollway.events.envelope import EVENT_TYPES
from tollway.plugins.groups import Group
from tollway.telemetry.sinks import SINK_NAME


def _known_types(value: list[str]) -> list[str]:
    for pattern in value:
        if not any(fnmatch.fnmatchcase(kind, pattern) for kind in EVENT_TYPES):
            raise ValueError(f"{pattern!r} matches no event type (known: {', '.join(EVENT_TYPES)})")
    return value


class Delivered(Strict):
    """What every built-in sink's configuration has: which events, how retried."""

    name: str | None = Field(None, pattern=SINK_NAME.pattern)
    events: list[str] = Field(default_factory=lambda: ["*"])
    batch_size: int | None = Field(None, ge=1, le=10_000, description="Events per send.")
    max_attempts: int | None = Field(None, ge=1, le=1000)
    backoff_seconds: float | None = Field(None, gt=0, le=3600)
    max_backoff_seconds: float | None = Field(None, gt=0, le=86_400)

    _events_known = field_validator("events")(_known_types)

    def options(self) -> dict[str, Any]:
        """The options set, as the sink takes them."""
        return self.model_dump(exclude_none=True)


class FileSinkConfig(Delivered):
    """The rotating JSONL file."""

    path: Path
    max_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    backups: int = Field(5, ge=0, le=1000)


class WebhookConfig(Delivered):
    """One signed webhook."""

    url: str = Field(pattern=r"^https?://[^\s]+$", description="From this file only.")
    secret: SecretStr = Field(min_length=16, description="Signs every delivery (HMAC-SHA256).")
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    concurrency: int = Field(4, ge=1, le=64, description="Deliveries in flight at once.")

    @field_validator("batch_size")
    @classmethod
    def _one_per_post(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("a webhook posts one event per request; set 'concurrency'")
        return value

    def options(self) -> dict[str, Any]:
        """What the webhook sink is built with (named after its URL by default)."""
        options = super().options() | {"secret": self.secret.get_secret_value()}
        options["batch_size"] = options.pop("concurrency")
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:10]
        return {"name": f"webhook-{digest}", **options}


class RedisStreamConfig(Delivered):
    """The Redis stream (needs ``redis_url``)."""

    stream: str = Field(min_length=1, max_length=200, description="After redis_prefix.")
    maxlen: int = Field(100_000, ge=1, le=1_000_000_000)


class PluginSinkConfig(Strict):
    """A sink plugin by ``type``, with its options (checked by the plugin)."""

    model_config = Strict.model_config | {"extra": "allow"}

    type: str
    events: list[str] = Field(default_factory=lambda: ["*"])

    _events_known = field_validator("events")(_known_types)

    @field_validator("type")
    @classmethod
    def _installed(cls, value: str) -> str:
        return installed_plugin(Group.SINKS, "sink type", value)

    def options(self) -> dict[str, Any]:
        """Everything but ``type``: what the sink is built with."""
        return {"name": self.type, "events": self.events, **(self.model_extra or {})}


class EventsConfig(Strict):
    """Event export: sinks, and the settings of the events the gateway produces."""

    file: FileSinkConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    redis_stream: RedisStreamConfig | None = None
    sinks: list[PluginSinkConfig] = Field(default_factory=list)
    budget_thresholds: list[float] = Field(
        default_factory=lambda: [50.0, 80.0, 100.0],
        description="Percentages of a budget that emit budget.threshold once per period.",
    )
    key_expiry_scan_seconds: float = Field(
        60.0, ge=0.05, le=86_400, description="How often expired keys are looked for."
    )
    drain_seconds: float = Field(
        5.0, ge=0, le=300, description="At shutdown, time given to deliver what is pending."
    )
    segment_bytes: int = Field(4 * 1024 * 1024, ge=4096, le=1024 * 1024 * 1024)

    @field_validator("file", mode="before")
    @classmethod
    def _file_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str | Path) else value

    @field_validator("redis_stream", mode="before")
    @classmethod
    def _stream_name(cls, value: Any) -> Any:
        return {"stream": value} if isinstance(value, str) else value

    @field_validator("budget_thresholds")
    @classmethod
    def _percentages(cls, value: list[float]) -> list[float]:
        if any(not 0 < percent <= 100 for percent in value):
            raise ValueError("each a percentage above 0 and at most 100")
        return sorted(set(value))

    @model_validator(mode="after")
    def _names_unique(self) -> EventsConfig:
        seen: set[str] = set()
        for name in self.sink_names():
            if name in seen:
                raise ValueError(f"two sinks are named {name!r}; give each a distinct 'name'")
            seen.add(name)
        return self

    def sink_names(self) -> list[str]:
        """The configured sinks' names (their places in the outbox)."""
        names = [self.file.name or "file"] if self.file else []
        names += [hook.name or hook.options()["name"] for hook in self.webhooks]
        if self.redis_stream:
            names.append(self.redis_stream.name or "redis_stream")
        names += [str(sink.options().get("name") or sink.type) for sink in self.sinks]
        return names

    @property
    def enabled(self) -> bool:
        """Whether any sink is configured."""
        return bool(self.file or self.webhooks or self.redis_stream or self.sinks)
