"""Config reload while ``tollway serve`` runs: on SIGHUP and when the file changes, in one
process and in every worker. A new config routes new calls; a call in flight finishes on
the config (and the provider connection) it started with; a config that does not load
is refused with a log line and the running one kept."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
from serving_support import (
    OPENAI_KEY,
    OTHER_OPENAI_KEY,
    PATIENCE,
    bearer,
    chat,
    edit_config,
    log_lines,
    messages,
    spend_rows,
    start,
    wait_for_log,
    write_config,
)

from fake_upstream import FakeUpstream, SlowEvents
from served import ServedGateway

RELOADED = "config reloaded"
REFUSED = "config reload refused; the running config is kept"
RESTART = "config changes that take effect only after a restart"


def served_by(fake: FakeUpstream, marker: str) -> tuple[str, str]:
    """The upstream model and credential the fake saw for the call carrying ``marker``."""
    [seen] = [r for r in fake.requests if marker.encode() in r.raw]
    return seen.body["model"], seen.headers["authorization"]


def call(client: httpx.Client, marker: str) -> httpx.Response:
    """One ``gpt-live`` chat call carrying ``marker``, answered 200."""
    response = client.post("/v1/chat/completions", json=chat("gpt-live", marker), headers=bearer())
    assert response.status_code == 200, response.text
    return response


def to_second_account(config: dict[str, Any]) -> None:
    """``gpt-live`` moves to another provider account (another key) as ``upstream-two``;
    the first account is removed."""
    first = config["providers"].pop("oa")
    config["providers"]["oa2"] = {**first, "api_key": OTHER_OPENAI_KEY}
    config["models"][0] = {"name": "gpt-live", "provider": "oa2", "model": "upstream-two"}


def stop(gateway: ServedGateway) -> int:
    """SIGTERM and the exit status."""
    process = gateway.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    status = process.wait(PATIENCE)
    gateway.process = None
    return status


def test_sighup_reloads_routing_while_a_stream_finishes_on_the_old_config(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "tollway.yaml", data, fake)
    gateway = start(ServedGateway(config, data))
    try:
        process = gateway.process
        assert process is not None
        with httpx.Client(base_url=gateway.url, timeout=PATIENCE) as client:
            call(client, "before")
            assert served_by(fake, "before") == ("upstream-one", f"Bearer {OPENAI_KEY}")

            fake.script(SlowEvents(0.25, pieces=40), match="in-flight")
            body = chat("gpt-live", "in-flight", stream=True)
            with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=bearer()
            ) as streamed:
                lines = streamed.iter_lines()
                assert next(line for line in lines if line.startswith("data:"))
                # The stream is running on the first account; the config moves the model.
                edit_config(config, to_second_account)
                process.send_signal(signal.SIGHUP)
                wait_for_log(gateway, lambda lines: len(messages(lines, RELOADED)) == 1)
                call(client, "after")
                assert served_by(fake, "after") == ("upstream-two", f"Bearer {OTHER_OPENAI_KEY}")
                rest = list(lines)
            stream_id = streamed.headers["x-request-id"]

        events = [line.removeprefix("data: ") for line in rest if line.startswith("data:")]
        assert events[-1] == "[DONE]"
        text = "".join(
            choice["delta"].get("content") or ""
            for event in events[:-1]
            for choice in orjson.loads(event)["choices"]
        )
        assert text.count(" w") == 40  # every piece arrived
        assert served_by(fake, "in-flight") == ("upstream-one", f"Bearer {OPENAI_KEY}")
        [record] = [r for r in fake.requests if b"in-flight" in r.raw]
        [after] = [r for r in fake.requests if b"after" in r.raw]
        assert record.completed
        # Still streaming on the first account's connection after the new config served.
        assert record.event_times[-1] > after.at

        # An invalid config is refused with a line naming the field; the running one stays.
        def unknown_provider(config: dict[str, Any]) -> None:
            config["models"][0]["provider"] = "nowhere"

        edit_config(config, unknown_provider)
        process.send_signal(signal.SIGHUP)
        lines = wait_for_log(gateway, lambda lines: len(messages(lines, REFUSED)) == 1)
        assert (
            "models[0].provider: unknown provider 'nowhere'"
            in messages(lines, REFUSED)[0]["reason"]
        )
        config.write_text("models: [unclosed\n", encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        lines = wait_for_log(gateway, lambda lines: len(messages(lines, REFUSED)) == 2)
        assert "not valid YAML" in messages(lines, REFUSED)[1]["reason"]
        with httpx.Client(base_url=gateway.url, timeout=PATIENCE) as client:
            call(client, "refused")
        assert served_by(fake, "refused") == ("upstream-two", f"Bearer {OTHER_OPENAI_KEY}")

        # What a reload cannot change is named, and what it can is applied.
        write_config(config, data, fake, database_grace=5)
        process.send_signal(signal.SIGHUP)
        lines = wait_for_log(gateway, lambda lines: len(messages(lines, RELOADED)) == 2)
        assert messages(lines, RESTART)[-1]["settings"] == ["database_grace"]
        with httpx.Client(base_url=gateway.url, timeout=PATIENCE) as client:
            call(client, "restored")
        assert served_by(fake, "restored") == ("upstream-one", f"Bearer {OPENAI_KEY}")
        assert stop(gateway) == 0
    finally:
        gateway.stop()

    # The stream that spanned the reload is metered on the deployment it used.
    [row] = spend_rows(gateway.db_path, "request_id = ?", stream_id)
    assert (row["provider"], row["upstream_model"], row["status"]) == ("oa", "upstream-one", 200)
    assert row["output_tokens"] == 40


def test_every_worker_reloads_on_sighup_and_on_a_file_change(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "tollway.yaml", data, fake, config_watch_seconds=0.2)
    gateway = start(ServedGateway(config, data, workers=2))
    try:
        process = gateway.process
        assert process is not None

        def ready(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return messages(lines, "ready")

        def by_workers(trigger: str) -> set[int]:
            lines = messages(log_lines(gateway), RELOADED)
            return {line["pid"] for line in lines if line["trigger"] == trigger}

        # Readiness answers once one worker serves: wait for both, then SIGHUP to the
        # parent reaches each worker, which reloads in place (same process).
        wait_for_log(gateway, lambda lines: len({line["pid"] for line in ready(lines)}) == 2)
        process.send_signal(signal.SIGHUP)
        wait_for_log(gateway, lambda _: len(by_workers("SIGHUP")) == 2)
        workers = by_workers("SIGHUP")
        assert process.pid not in workers

        # A change to the file alone: every worker sees it and routes by it.
        edit_config(config, to_second_account)
        wait_for_log(gateway, lambda _: by_workers("file") == workers)
        for index in range(8):
            # A fresh connection each time, so that both workers take calls.
            with httpx.Client(base_url=gateway.url, timeout=PATIENCE) as client:
                call(client, f"worker-call-{index}")
            assert served_by(fake, f"worker-call-{index}")[0] == "upstream-two"
        assert stop(gateway) == 0
    finally:
        gateway.stop()
