"""The CLI's connection to a running gateway's management API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import typer

from tollway.auth.master import MASTER_KEY_FILE

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    """The gateway refused or could not be reached; the message is one line."""


def resolve_master_key(explicit: str | None, data_dir: Path) -> str:
    """The key to use: --master-key / TOLLWAY_MASTER_KEY, else the generated one."""
    if explicit:
        return explicit
    path = data_dir / MASTER_KEY_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    raise ApiError(
        f"no master key: pass --master-key, set TOLLWAY_MASTER_KEY, or run from the "
        f"directory whose {path} the gateway generated"
    )


class Api:
    """Thin JSON client for ``/api/v1``."""

    def __init__(self, url: str, key: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; returns the decoded JSON or raises ApiError."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the gateway at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(f"{_message(response)} (HTTP {response.status_code})")
        return response.json()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0] if response.text.strip() else "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body)[:300]


def api_from(ctx: typer.Context) -> Api:
    """The Api configured by the group's options."""
    api: Api = ctx.obj
    return api
