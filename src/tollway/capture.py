"""Capture of prompt and response bodies for the request log: off unless a project turns
it on (``capture: {enabled: true, max_bytes: N}``).

For such a project's calls, ``BodyTap`` wraps the call's ``send`` (as the cache's
recorder does) and keeps the first bytes of what the client received, streamed or not,
translated or not; the request is the body as the client sent it. Each is cut to
``max_bytes`` and the credentials the secrets guard finds are replaced before anything
is written (the journal first, then ``request_bodies`` with the next batch, off the
request path). The guard scans a margin past the cut, so a secret the cut goes through
is still seen whole, and a truncated body also loses the run of token characters
(letters, digits, ``_+/=.~-``) the cut ends in. A streamed answer is scanned as it was
sent (server-sent events): a credential the model spelled across two events is not
recognised.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tollway.asgi import Message, Send

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.guards.secrets import SecretsGuard

MAX_CAPTURE_BYTES = 1024 * 1024
DEFAULT_CAPTURE_BYTES = 32 * 1024
# Scanned past the cut: a PEM key or a long token crossing it is found whole.
MARGIN_BYTES = 32 * 1024
# What credentials are made of: a cut ending in such a run may hold part of one.
_TRAILING_WORD = re.compile(r"[\w+/=.~-]+\Z")


class BodyTap:
    """An ASGI ``send`` that passes every message on and keeps the first ``keep`` bytes
    of the response body (and counts all of them)."""

    __slots__ = ("_chunks", "_keep", "_kept", "_send", "size")

    def __init__(self, send: Send, keep: int) -> None:
        self._send = send
        self._keep = keep
        self._chunks: list[bytes] = []
        self._kept = 0
        self.size = 0

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        if message["type"] == "http.response.body":
            chunk: bytes = message.get("body", b"")
            self.size += len(chunk)
            room = self._keep - self._kept
            if chunk and room > 0:
                piece = chunk[:room]
                self._chunks.append(piece)
                self._kept += len(piece)

    def body(self) -> bytes:
        """What was kept."""
        return b"".join(self._chunks)


class Capture:
    """Taps the calls of projects that capture, and turns what was tapped into a bodies
    record with secrets redacted."""

    def __init__(self) -> None:
        self._guard: SecretsGuard | None = None  # built on first use

    def tap(self, record: CallRecord) -> None:
        """Wrap the call's ``send`` when its project captures bodies."""
        key = record.principal.key if record.principal is not None else None
        policy = key.project_policy.capture if key is not None else None
        if policy is None or record.send is None:
            return
        record.capture = BodyTap(record.send, policy.max_bytes + MARGIN_BYTES)
        record.send = record.capture

    def bodies(self, record: CallRecord, ts: str) -> dict[str, Any] | None:
        """The call's bodies record (None when it was not tapped)."""
        tap, key = record.capture, record.principal.key if record.principal else None
        if tap is None or key is None or key.project_policy.capture is None:
            return None
        limit = key.project_policy.capture.max_bytes
        return {
            "request_id": record.request_id,
            "ts": ts,
            "request_body": self.clean(record.body, len(record.body), limit),
            "response_body": self.clean(tap.body(), tap.size, limit),
            "request_bytes": len(record.body),
            "response_bytes": tap.size,
        }

    def clean(self, data: bytes, size: int, limit: int) -> str:
        """``data`` (the first bytes of ``size``) as text of at most ``limit`` bytes, with
        the credentials in it redacted."""
        from tollway.guards.redact import redact

        if self._guard is None:
            from tollway.guards.secrets import SecretsGuard

            self._guard = SecretsGuard({})
        text = data[: limit + MARGIN_BYTES].decode("utf-8", "replace")
        text = redact(text, self._guard.scan(text), self._guard)
        cut = text.encode()[:limit].decode("utf-8", "ignore")
        if len(cut) < len(text) or size > len(data):
            # The cut may go through a credential the scan did not see whole.
            cut = _TRAILING_WORD.sub("", cut)
        return cut
