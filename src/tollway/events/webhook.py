"""The ``webhook`` sink: each event POSTed as JSON to a URL from the operator's config,
signed so the receiver can tell it came from this gateway and was not replayed late.

    x-tollway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the exact bytes it received, compares in constant
time, and refuses a ``t`` too far from its clock (``verify`` does all three). Any
answer but 2xx (redirects are not followed), a timeout or a refused connection is a
failure: retried with backoff, dead-lettered after ``max_attempts`` (default 8). Up to
``concurrency`` events of a batch are in flight at once. ``x-tollway-event-id`` and
``x-tollway-event-type`` repeat the body's ``id`` and ``type``; deduplicate by the id.

    events:
      webhooks:
        - {url: https://hooks.example.com/tollway, secret: "${HOOK_SECRET}",
           events: [key.*, budget.threshold]}
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from tollway import __version__
from tollway.telemetry.sinks import Event, Failure, Sink

SIGNATURE_HEADER = "x-tollway-signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``x-tollway-signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``TOLERANCE_SECONDS``."""
    parts = dict(part.partition("=")[::2] for part in header.split(","))
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, int(stamp), body).rpartition("v1=")[2]
    return hmac.compare_digest(expected, given)


class WebhookOptions(BaseModel):
    """The webhook sink's own options."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str = Field(pattern=r"^https?://[^\s]+$")
    secret: str = Field(min_length=1)
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class WebhookSink(Sink):
    """POSTs each event, signed, to one URL."""

    defaults: ClassVar[Mapping[str, Any]] = {
        "name": "webhook",
        "batch_size": 4,  # events in flight at once (``concurrency`` in the config)
        "max_attempts": 8,
    }

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.hook = WebhookOptions.model_validate(options)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.hook.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def send(self, events: Sequence[Event]) -> list[Failure]:
        errors = await asyncio.gather(*(self._post(event) for event in events))
        return [(event, error) for event, error in zip(events, errors, strict=True) if error]

    async def _post(self, event: Event) -> str | None:
        """None when delivered, else why not."""
        assert self._session is not None, "start() first"
        headers = {
            "content-type": "application/json",
            "user-agent": f"tollway/{__version__}",
            SIGNATURE_HEADER: signature(self.hook.secret, int(time.time()), event.raw),
            "x-tollway-event-id": event.id,
            "x-tollway-event-type": event.type,
        }
        try:
            async with self._session.post(
                self.hook.url, data=event.raw, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
