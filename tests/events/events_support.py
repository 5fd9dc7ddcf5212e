"""Helpers for the event export tests: a webhook receiver that checks signatures on its
own (no Tollway code), calls and admin requests against a gateway, event files read back.

``Receiver`` listens on a fixed 127.0.0.1 port below the ephemeral range, so it can be
stopped (connections refused) and started again on the same port; ``failing`` makes it
answer 503 instead. Every delivery is kept, duplicates included; ``by_id`` deduplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from harness import GPT, MASTER_KEY
from services import free_port

SECRET = "whsec-test-3f9a1c7e5b2d40869e1f"
TOLERANCE = 300


def signed_by(secret: str, header: str, body: bytes) -> bool:
    """The receiver's check: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    fields = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp = fields.get("t", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), fields.get("v1", ""))


class Receiver:
    """A webhook endpoint that verifies every delivery and keeps what it accepted."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.port = free_port()
        self.failing = False
        self.deliveries: list[dict[str, Any]] = []  # accepted, in arrival order
        self.refused = 0  # answered 503 while failing
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where the gateway posts."""
        return f"http://127.0.0.1:{self.port}/hooks/tollway"

    def start(self) -> Receiver:
        """Listen (again, on the same port)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._take(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        lowered = {name.lower(): value for name, value in headers.items()}
        if not signed_by(self.secret, lowered.get("x-tollway-signature", ""), body):
            with self._lock:
                self.bad_signatures += 1
            return 401
        if self.failing:
            with self._lock:
                self.refused += 1
            return 503
        event = orjson.loads(body)
        if (lowered.get("x-tollway-event-id"), lowered.get("x-tollway-event-type")) != (
            event["id"],
            event["type"],
        ):
            with self._lock:
                self.bad_signatures += 1  # the headers must repeat the body's id and type
            return 400
        with self._lock:
            self.deliveries.append(event)
        return 200

    def by_id(self) -> dict[str, dict[str, Any]]:
        """Accepted events, deduplicated by id."""
        with self._lock:
            return {event["id"]: event for event in self.deliveries}

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Deduplicated events of one type."""
        return [event for event in self.by_id().values() if event["type"] == kind]

    def completed(self) -> set[str]:
        """Request ids of the ``request.completed`` events received."""
        return {event["data"]["request_id"] for event in self.of_type("request.completed")}


@contextmanager
def receiving(secret: str = SECRET) -> Iterator[Receiver]:
    """A started receiver, stopped on exit."""
    receiver = Receiver(secret).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def admin(url: str) -> httpx.Client:
    """A management API client with the master key."""
    return httpx.Client(
        base_url=url + "/api/v1", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )


def chat(url: str, key: str = MASTER_KEY, model: str = GPT, **extra: Any) -> httpx.Response:
    """One chat completion; its ``x-request-id`` names its ``request.completed`` event."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def file_events(path: Path) -> list[dict[str, Any]]:
    """Every event in a JSONL file and its rotated predecessors (``path.1`` ...)."""
    files = [path, *sorted(path.parent.glob(path.name + ".[0-9]*"))]
    events = []
    for each in files:
        if each.exists():
            events.extend(orjson.loads(line) for line in each.read_bytes().splitlines())
    return events


def outbox_instances(data_dir: Path) -> list[str]:
    """The process directories in the data dir's outbox (one per live or unfinished
    process)."""
    root = data_dir / "events" / "outbox"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
