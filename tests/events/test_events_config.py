"""The ``events:`` section: short forms, defaults, and a clear error for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tollway.settings import ConfigError, Settings, load_settings

HOOK = {"url": "https://hooks.example.com/tollway", "secret": "s" * 16}


def _load(tmp_path: Path, **values: Any) -> Settings:
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return load_settings(path)


def test_short_forms_and_defaults(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        redis_url="redis://127.0.0.1:6379/0",
        events={"file": "/var/log/tollway/events.jsonl", "webhooks": [HOOK], "redis_stream": "ev"},
    )
    events = settings.events
    assert events.file is not None and events.file.path == Path("/var/log/tollway/events.jsonl")
    assert events.file.max_bytes == 100 * 1024 * 1024 and events.file.backups == 5
    assert events.redis_stream is not None and events.redis_stream.stream == "ev"
    assert events.budget_thresholds == [50.0, 80.0, 100.0]
    names = events.sink_names()
    assert names[0] == "file" and names[1].startswith("webhook-") and names[2] == "redis_stream"
    assert events.webhooks[0].options()["batch_size"] == 4  # concurrency
    assert "s" * 16 not in repr(settings)  # the secret is not shown
    assert not Settings().events.enabled


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"redis_stream": "ev"}, "events.redis_stream: needs redis_url"),
        ({"webhooks": [{**HOOK, "secret": "short"}]}, "events.webhooks.0.secret"),
        ({"webhooks": [{**HOOK, "url": "ftp://x"}]}, "events.webhooks.0.url"),
        ({"webhooks": [{**HOOK, "events": ["keys.*"]}]}, "'keys.*' matches no event type"),
        ({"webhooks": [HOOK, HOOK]}, "two sinks are named 'webhook-"),
        ({"webhooks": [{**HOOK, "batch_size": 10}]}, "set 'concurrency'"),
        ({"budget_thresholds": [0, 50]}, "events.budget_thresholds"),
        ({"sinks": [{"type": "kafka"}]}, "unknown sink type 'kafka' (known: file, redis_stream"),
        ({"file": {"path": "/tmp/x", "name": "has space"}}, "events.file.name"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, events: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, events=events)
    assert message in str(caught.value)


def test_the_old_sinks_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sinks"):
        _load(tmp_path, sinks=[{"type": "file", "path": "/tmp/x"}])
