"""The CLI's HTTP client for a running gateway's management API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 30.0

# What to do about the answers a new user meets first.
_HINTS = {
    401: "check --master-key / TOLLWAY_MASTER_KEY",
    403: "this admin key's role may not do that; use the master key or an admin key",
}


class ApiError(Exception):
    """The gateway refused or could not be reached; the message is one line."""


class Api:
    """Thin JSON client for ``/api/v1``."""

    def __init__(self, url: str, key: str, timeout: float = TIMEOUT) -> None:
        # Imported here: httpx is a tenth of a second that --help and usage errors skip.
        import httpx

        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; returns the decoded JSON or raises ApiError."""
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"the gateway at {self.url} did not answer within {TIMEOUT:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the gateway at {self.url} ({exc}): is `tollway serve` "
                f"running there? Pass --url or set TOLLWAY_URL"
            ) from None
        if response.status_code >= 400:
            hint = _HINTS.get(response.status_code)
            status = f"HTTP {response.status_code}"
            raise ApiError(f"{_message(response)} ({status}{': ' + hint if hint else ''})")
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"{self.url} answered {method} /api/v1{path} with something other than JSON: "
                f"is --url a Tollway gateway?"
            ) from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text.splitlines()[0][:300] if text else response.reason_phrase or "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body)[:300]
