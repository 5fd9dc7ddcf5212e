"""Graceful shutdown of ``tollway serve``: on SIGTERM it stops accepting, lets calls and
streams in flight run to their end for up to ``shutdown_grace_seconds``, cuts what still
runs past that (and meters it), flushes the journal and exits 0, with workers too. A
rolling restart on one port under load (clients retrying refused connections, as the
SDKs do) loses no request and no spend record."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from serving_support import (
    PATIENCE,
    bearer,
    chat,
    post_retrying,
    spend_rows,
    start,
    write_config,
)

from fake_upstream import FakeUpstream, SlowEvents, Stall, StallMidStream
from served import ServedGateway

LOAD_CLIENTS = 4


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling) for ``condition``; fail after ``PATIENCE``."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


def refused_while_running(port: int, gateway: ServedGateway) -> bool:
    """Connect until the port refuses; whether the process was still running then."""
    process = gateway.process
    assert process is not None
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                pass
        except ConnectionRefusedError:
            return process.poll() is None
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("the port kept accepting connections")


def exit_status(gateway: ServedGateway) -> int:
    """Wait for the process to end by itself; its exit status."""
    process = gateway.process
    assert process is not None
    status = process.wait(PATIENCE)
    gateway.process = None
    return status


class Stream:
    """One streamed chat call read to its end: its response and ``data:`` lines."""

    def __init__(self, url: str, marker: str) -> None:
        self.url, self.marker = url, marker
        self.lines: list[str] = []
        self.request_id = ""
        self.broken: str | None = None  # how the connection ended early, if it did
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Send the call and read until the stream ends."""
        body = chat("gpt-live", self.marker, stream=True)
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=PATIENCE) as client,
            client.stream("POST", "/v1/chat/completions", json=body, headers=bearer()) as r,
        ):
            assert r.status_code == 200
            self.request_id = r.headers["x-request-id"]
            try:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        self.lines.append(line.removeprefix("data: "))
                        self.started.set()
            except httpx.HTTPError as exc:
                self.broken = type(exc).__name__

    def text(self) -> str:
        """The streamed text."""
        return "".join(
            choice["delta"].get("content") or ""
            for line in self.lines
            if line != "[DONE]"
            for choice in orjson.loads(line)["choices"]
        )


async def test_rolling_restart_under_load_loses_no_request_and_no_spend_record(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "tollway.yaml", data, fake, shutdown_grace_seconds=300)
    first = await asyncio.to_thread(start, ServedGateway(config, data))
    port, url = first.port, first.url
    second = ServedGateway(config, data, port=port)
    fake.script(Stall(0.05), path="/v1/chat/completions", match="load-", persistent=True)
    fake.script(SlowEvents(0.25, pieces=40), match="long-stream")
    answered: list[tuple[str, httpx.Response]] = []
    retried: list[str] = []
    done = asyncio.Event()

    async def load(client_number: int) -> None:
        # One client, keep-alive connections, one call at a time, each call marked.
        async with httpx.AsyncClient(base_url=url, timeout=PATIENCE) as client:
            for index in range(1_000_000):
                if done.is_set():
                    return
                marker = f"load-{client_number}-{index}"
                body = chat("gpt-live", marker)
                response = await post_retrying(client, "/v1/chat/completions", body, retried)
                answered.append((marker, response))

    try:
        stream = Stream(url, "long-stream")
        streaming = asyncio.create_task(stream.run())
        loads = [asyncio.create_task(load(n)) for n in range(LOAD_CLIENTS)]
        await asyncio.wait_for(stream.started.wait(), PATIENCE)
        await until(lambda: len(answered) >= 20)

        # The old process stops listening at once and drains; the new one takes the port.
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert await asyncio.to_thread(refused_while_running, port, first)
        await asyncio.to_thread(start, second)
        assert second.port == port
        assert await asyncio.to_thread(exit_status, first) == 0
        after_restart = len(answered)
        await until(lambda: len(answered) >= after_restart + 20)
        done.set()
        await asyncio.gather(*loads, streaming)
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_status, second) == 0
    finally:
        done.set()
        first.stop()
        second.stop()

    # Every call was answered once, and reached the upstream once.
    assert [r.status_code for _, r in answered] == [200] * len(answered)
    markers = (re.findall(rb"load-\d+-\d+", seen.raw) for seen in fake.requests)
    sent = Counter(marker.decode() for found in markers for marker in found)
    assert sent == Counter(marker for marker, _ in answered)
    # The clients met the gap between the two processes, and retried through it.
    assert "ConnectError" in retried
    # The stream that spanned the restart ran to its end, after SIGTERM.
    assert stream.broken is None and stream.lines[-1] == "[DONE]"
    assert stream.text().count(" w") == 40
    [long] = [seen for seen in fake.requests if b"long-stream" in seen.raw]
    assert long.completed and long.event_times[-1] > stopped_at
    # One spend record per answered call, whichever process served it.
    rows = spend_rows(first.db_path)
    ids = [r.headers["x-request-id"] for _, r in answered] + [stream.request_id]
    assert sorted(row["request_id"] for row in rows) == sorted(ids)
    assert {row["status"] for row in rows} == {200}
    [streamed] = [row for row in rows if row["request_id"] == stream.request_id]
    assert streamed["output_tokens"] == 40


@pytest.mark.parametrize("workers", [2])
async def test_sigterm_finishes_streams_cuts_overdue_calls_and_meters_both(
    fake: FakeUpstream, tmp_path: Path, workers: int
) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "tollway.yaml", data, fake, shutdown_grace_seconds=12)
    gateway = await asyncio.to_thread(start, ServedGateway(config, data, workers=workers))
    fake.script(SlowEvents(0.25, pieces=24), match="finishing")
    fake.script(StallMidStream(after_events=2, seconds=600), match="overdue")
    finishing, overdue = Stream(gateway.url, "finishing"), Stream(gateway.url, "overdue")
    try:
        tasks = [asyncio.create_task(finishing.run()), asyncio.create_task(overdue.run())]
        await asyncio.wait_for(finishing.started.wait(), PATIENCE)
        await asyncio.wait_for(overdue.started.wait(), PATIENCE)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        # New connections are refused while the calls in flight still run.
        assert await asyncio.to_thread(refused_while_running, gateway.port, gateway)
        await asyncio.gather(*tasks)
        assert await asyncio.to_thread(exit_status, gateway) == 0
    finally:
        gateway.stop()

    # The stream that could finish in time did, after SIGTERM.
    assert finishing.broken is None and finishing.lines[-1] == "[DONE]"
    assert finishing.text().count(" w") == 24
    [record] = [seen for seen in fake.requests if b"finishing" in seen.raw]
    assert record.completed and record.event_times[-1] > stopped_at
    # The one still running at the deadline was cut, and both have their spend record.
    assert "[DONE]" not in overdue.lines
    rows = {row["request_id"]: row for row in spend_rows(gateway.db_path)}
    assert set(rows) == {finishing.request_id, overdue.request_id}
    assert (rows[finishing.request_id]["status"], rows[finishing.request_id]["output_tokens"]) == (
        200,
        24,
    )
    cut = rows[overdue.request_id]
    assert cut["error"] == "cancelled"
    # The upstream never reported usage for it: its tokens are estimated, and flagged.
    assert cut["estimated"] and cut["input_tokens"] > 0 and cut["output_tokens"] > 0
