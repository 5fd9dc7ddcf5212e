"""Browsers calling the proxy with a project's key: allowed origins per project, denied
by default (https://fetch.spec.whatwg.org/#http-cors-protocol).

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) carries
no key, so it cannot be judged by the project: it is answered for an origin that some
active project allows, and refused (403, no CORS headers) for any other. The call that
follows carries the key, and its ``Origin`` must be one the key's project allows;
otherwise it is refused with 403 ``origin_not_allowed`` before anything is spent. A call
without ``Origin`` (every SDK outside a browser) is not a CORS call. The master key is
never accepted from a browser.

Allowed responses name the origin (never ``*``), vary on it, and expose the headers
clients read: request ids, cost, cache status, rate limits, ``retry-after``.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import select

from tollway.asgi import RawHeaders
from tollway.auth.credentials import Principal
from tollway.auth.directory import KeyDirectory
from tollway.errors import Forbidden
from tollway.store.db import Database
from tollway.store.tables import Project

log = logging.getLogger("tollway.cors")
_EXPOSED = (
    b"x-request-id, request-id, x-tollway-cost-usd, x-tollway-cache, retry-after, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
    b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens"
)
# Request headers a preflight may ask for: names only (RFC 9110 tokens), bounded.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_MAX_HEADER_LIST = 2048
PREFLIGHT_MAX_AGE = b"600"


class OriginNotAllowed(Forbidden):
    """A browser call from an origin its project does not allow."""

    code = "origin_not_allowed"


class Cors:
    """Origins the projects allow, re-read whenever the keys epoch moves (a project's
    policy change bumps it, like a revocation)."""

    def __init__(self, db: Database, directory: KeyDirectory) -> None:
        self._db = db
        self._directory = directory
        self._epoch = -1
        self._origins: frozenset[str] = frozenset()

    async def any_project_allows(self, origin: str) -> bool:
        """Whether some active project allows ``origin`` (for preflights)."""
        epochs = await self._directory.epochs()
        if epochs.keys != self._epoch:
            try:
                self._origins = await self._load()
            except Exception:  # the edge: keep the last set read; a preflight is no grant
                log.warning("allowed origins unreadable; using the last ones", exc_info=True)
                self._db.failures.report("database", "cors")
            else:
                self._epoch = epochs.keys
        return origin in self._origins or "*" in self._origins

    async def _load(self) -> frozenset[str]:
        async with self._db.reader() as session:
            rows = await session.execute(
                select(Project.cors_origins).where(Project.active.is_(True))
            )
        return frozenset(o for (origins,) in rows if origins for o in origins if isinstance(o, str))

    async def preflight(self, origin: str, headers: dict[str, str]) -> RawHeaders | None:
        """The preflight's answer headers, or None to refuse it."""
        if not await self.any_project_allows(origin):
            return None
        answer: RawHeaders = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            (b"vary", b"origin, access-control-request-method, access-control-request-headers"),
        ]
        asked = headers.get("access-control-request-headers", "").strip()
        if asked and len(asked) <= _MAX_HEADER_LIST and _HEADER_LIST.match(asked):
            answer.append((b"access-control-allow-headers", asked.encode("latin-1")))
        return answer


def call_headers(principal: Principal, origin: str) -> RawHeaders:
    """The CORS headers of a browser call's answer; OriginNotAllowed when its project
    does not allow ``origin`` (or it uses the master key)."""
    key = principal.key
    if key is None or not key.project_policy.allows_origin(origin):
        raise OriginNotAllowed(
            f"Browser calls from origin '{origin[:200]}' are not allowed for this key's "
            "project (set its cors_origins)."
        )
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", _EXPOSED),
        (b"vary", b"origin"),
    ]
