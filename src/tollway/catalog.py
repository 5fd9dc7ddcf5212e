"""``GET /v1/models``: the configured model names, in the dialect of the caller's SDK.

OpenAI: https://platform.openai.com/docs/api-reference/models/list
Anthropic (chosen when the request carries ``anthropic-version``):
https://docs.anthropic.com/en/api/models-list
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.asgi import JSON_CONTENT_TYPE, Receive, Scope, Send, header_map, new_request_id
from tollway.asgi import send_response as send_bytes
from tollway.auth.credentials import Principal
from tollway.auth.directory import KeyDirectory
from tollway.dialects.render import render_error, request_id_headers
from tollway.edge import dialect_of
from tollway.errors import MethodNotAllowed, TollwayError
from tollway.routing.router import Router
from tollway.settings import Dialect

_EPOCH = "1970-01-01T00:00:00Z"


class Catalog:
    """Serves the model list and single-model lookups."""

    def __init__(self, directory: KeyDirectory, router: Router) -> None:
        self._directory = directory
        self._router = router

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models`` and ``GET /v1/models/{id}``."""
        dialect = dialect_of(scope)
        ids = request_id_headers(dialect, new_request_id())
        try:
            headers = header_map(scope)
            if scope["method"] != "GET":
                raise MethodNotAllowed("Use GET to list models.", headers={"allow": "GET"})
            principal = await self._directory.authenticate(headers)
            path: str = scope["path"]
            if path.rstrip("/") == "/v1/models":
                body = self._listing(dialect, principal)
            else:
                body = self._one(dialect, path.removeprefix("/v1/models/"))
            status = 200
        except TollwayError as error:
            status, body = error.status, render_error(dialect, error)
            extra = [(k.encode(), v.encode()) for k, v in error.headers.items()]
            await send_bytes(send, status, body, [JSON_CONTENT_TYPE, *ids, *extra])
            return
        await send_bytes(send, status, body, [JSON_CONTENT_TYPE, *ids])

    def _entry(self, dialect: Dialect, name: str) -> dict[str, Any]:
        if dialect is Dialect.ANTHROPIC:
            return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH}
        plan = self._router.resolve(name)
        owner = plan.deployments[0].provider.name
        return {"id": name, "object": "model", "created": 0, "owned_by": owner}

    def _listing(self, dialect: Dialect, principal: Principal) -> bytes:
        # A key sees the models it may use.
        key = principal.key
        names = [name for name in self._router.names() if key is None or key.allows(name)]
        data = [self._entry(dialect, name) for name in names]
        if dialect is Dialect.ANTHROPIC:
            return orjson.dumps(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": names[0] if names else None,
                    "last_id": names[-1] if names else None,
                }
            )
        return orjson.dumps({"object": "list", "data": data})

    def _one(self, dialect: Dialect, name: str) -> bytes:
        self._router.resolve(name)  # ModelNotFound unless a name or a glob serves it
        return orjson.dumps(self._entry(dialect, name))
