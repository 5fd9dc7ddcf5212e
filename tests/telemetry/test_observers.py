"""Observers fan out to the observers that override each hook; one that raises is logged
and the others still run."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.telemetry.observer import Observer, Observers


class Counting(Observer):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def call_started(self, record: Any) -> None:
        self.calls.append("call_started")

    def attempt_started(self, record: Any, route: Any) -> dict[str, str]:
        self.calls.append("attempt_started")
        return {"traceparent": "00-a-b-01"}

    def store_failed(self, store: str, operation: str) -> None:
        self.calls.append(f"store_failed:{store}:{operation}")


class Failing(Observer):
    def call_started(self, record: Any) -> None:
        raise RuntimeError("broken exporter")

    def attempt_started(self, record: Any, route: Any) -> dict[str, str]:
        raise RuntimeError("broken exporter")


def test_hooks_reach_only_the_observers_that_listen() -> None:
    counting, silent = Counting(), Observer()
    observers = Observers([silent, counting])

    observers.call_started(None)  # type: ignore[arg-type]
    observers.call_finished(None)  # type: ignore[arg-type]
    observers.store_failed("redis", "limits")

    assert counting.calls == ["call_started", "store_failed:redis:limits"]
    assert observers._call_started == (counting,)
    assert observers._call_finished == ()


def test_a_failing_observer_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counting = Counting()
    observers = Observers([Failing(), counting])

    observers.call_started(None)  # type: ignore[arg-type]
    headers = observers.attempt_started(None, None)  # type: ignore[arg-type]

    assert counting.calls == ["call_started", "attempt_started"]
    assert headers == {"traceparent": "00-a-b-01"}
    hooks = [r.fields["hook"] for r in caplog.records if r.getMessage() == "observer failed"]  # type: ignore[attr-defined]
    assert hooks == ["call_started", "attempt_started"]
