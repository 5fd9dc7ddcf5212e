"""The UI's pages and files: ``/ui/login``, ``/ui`` and one path per page (the same
shell; its modules draw the page), and ``/ui/static/...``. A page asked for without a
live session redirects to the sign-in page."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from tollway.admin.deps import Context
from tollway.errors import NotFound
from tollway.ui.secure import SecuredRoute
from tollway.ui.signin import current
from tollway.ui.state import Ui, UiState

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=SecuredRoute)
PAGES = frozenset({"overview", "keys", "projects", "spend", "requests", "providers", "audit"})
_SHELL = "index.html"
_LOGIN = "login.html"


def _file(ui: UiState, name: str, cache: str = "no-store") -> Response:
    asset = ui.assets.get(name)
    if asset is None:
        raise NotFound(f"No UI file '{name}'.")
    headers = {"etag": asset.etag, "cache-control": cache}
    return Response(asset.body, media_type=asset.content_type, headers=headers)


async def _page(request: Request, ctx: Context, ui: UiState) -> Response:
    if await current(request, ctx) is None:
        target = "/ui/login"
        if request.url.path != "/ui":
            target += "?next=" + quote(request.url.path, safe="/")
        return RedirectResponse(target, status_code=303)
    return _file(ui, _SHELL)


@router.get("")
async def home(request: Request, ctx: Context, ui: Ui) -> Response:
    """The overview, or the sign-in page without a session."""
    return await _page(request, ctx, ui)


@router.get("/login")
async def login(request: Request, ctx: Context, ui: Ui) -> Response:
    """The sign-in page (straight to the overview when already signed in)."""
    if await current(request, ctx) is not None:
        return RedirectResponse("/ui", status_code=303)
    return _file(ui, _LOGIN)


@router.get("/static/{path:path}")
async def static(path: str, request: Request, ui: Ui) -> Response:
    """A file shipped with the UI; 304 when the browser's copy is current."""
    asset = ui.assets.get(path)
    if asset is None:
        raise NotFound(f"No UI file '{path[:200]}'.")
    headers = {"etag": asset.etag, "cache-control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@router.get("/{page}")
async def page(page: str, request: Request, ctx: Context, ui: Ui) -> Response:
    """One of the UI's pages (``PAGES``)."""
    if page not in PAGES:
        raise NotFound(f"No UI page '{page[:200]}'.")
    return await _page(request, ctx, ui)
