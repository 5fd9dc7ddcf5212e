"""What every UI response carries: a strict Content-Security-Policy and the headers that
keep the pages out of frames and keep browsers from guessing types; the cookie flags."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from tollway.admin.app import error_body
from tollway.errors import TollwayError
from tollway.ui.config import UiConfig
from tollway.ui.sessions import COOKIE, SECURE_COOKIE

# Scripts and styles only from this origin (no inline code, no eval); data only from
# this origin; no plugins, no frames around or inside the pages.
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecuredRoute(APIRoute):
    """A route whose answers, errors included, carry ``HEADERS`` (and are never cached
    unless the route says otherwise)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            try:
                response = await handler(request)
            except TollwayError as error:
                body = error_body(error)
                response = JSONResponse(body, status_code=error.status, headers=error.headers)
            response.headers.update(HEADERS)
            response.headers.setdefault("cache-control", "no-store")
            return response

        return secured


def secure_cookie(request: Request, config: UiConfig) -> bool:
    """Whether the session cookie is marked Secure: as configured, else over TLS."""
    if config.cookie_secure is not None:
        return config.cookie_secure
    return request.url.scheme == "https"


def set_session_cookie(
    response: Response, request: Request, config: UiConfig, token: str, max_age: int
) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, for the whole site, expiring with
    the session; Secure (and ``__Host-``) over TLS."""
    secure = secure_cookie(request, config)
    response.set_cookie(
        SECURE_COOKIE if secure else COOKIE,
        token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request, config: UiConfig) -> None:
    """Tell the browser to forget the session cookie (both names)."""
    for name, secure in ((COOKIE, False), (SECURE_COOKIE, True)):
        if name in request.cookies or secure == secure_cookie(request, config):
            response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="strict")
