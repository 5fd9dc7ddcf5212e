"""A third-party sink, installed through the ``tollway.sinks`` entry-point group like the
built-ins, configured by type under ``events.sinks``: it gets every event it asked for,
and what it fails to take is sent again."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from events_support import admin, chat, wait_for

from fake_upstream import FakeUpstream
from harness import gateway_settings, running_gateway
from tollway.plugins.groups import Group, scan

PLUGIN = '''
from pathlib import Path
from tollway.telemetry.sinks import Sink


class Collector(Sink):
    """Appends events to ``path``; refuses the first ``refuse`` sends."""

    def __init__(self, options):
        super().__init__(options)
        self.path = Path(options["path"])
        self.refuse = int(options.get("refuse", 0))

    async def send(self, events):
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("collector not ready")
        with self.path.open("ab") as handle:
            handle.writelines(event.raw + b"\\n" for event in events)
        return []
'''


@pytest.fixture
def collector_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The module ``tw_event_sink`` (in ``tmp_path``) installed as the sink ``collector``."""
    (tmp_path / "tw_event_sink.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = importlib.metadata.EntryPoint(
        name="collector", value="tw_event_sink:Collector", group=Group.SINKS.value
    )
    real = importlib.metadata.entry_points

    def patched(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *([point] if group == Group.SINKS.value else [])]

    monkeypatch.setattr("tollway.plugins.groups.entry_points", patched)
    scan.cache_clear()
    yield
    monkeypatch.undo()
    scan.cache_clear()


def test_a_plugin_sink_gets_its_events(
    collector_installed: None, fake: FakeUpstream, tmp_path: Path
) -> None:
    out = tmp_path / "collected.jsonl"
    plugin = {
        "type": "collector",
        "name": "audit-bus",
        "path": str(out),
        "refuse": 2,
        "events": ["key.*"],
        "backoff_seconds": 0.05,
    }
    settings = gateway_settings(fake, tmp_path / "data", events={"sinks": [plugin]})
    with running_gateway(settings) as gw, admin(gw.url) as api:
        key = api.post("/keys", json={"name": "plugged"}).json()
        assert chat(gw.url).status_code == 200  # request.completed: not for this sink
        api.delete(f"/keys/{key['id']}")

        def types() -> list[str]:
            lines = out.read_bytes().splitlines() if out.exists() else []
            return [orjson.loads(line)["type"] for line in lines]

        wait_for(lambda: types() == ["key.created", "key.revoked"], what="the key events")
        assert api.get("/events/sinks").json() == [
            {"name": "audit-bus", "type": "collector", "events": ["key.*"], "delivered": 2}
        ]
