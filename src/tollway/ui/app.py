"""Puts the admin UI on the management app: its state, pages, sign-in and OIDC routes."""

from __future__ import annotations

from fastapi import FastAPI

from tollway.settings import Settings
from tollway.ui.assets import Assets
from tollway.ui.oidc import OidcSignIn
from tollway.ui.oidc import router as oidc_router
from tollway.ui.pages import router as pages_router
from tollway.ui.signin import router as signin_router
from tollway.ui.state import UiState


def install_ui(app: FastAPI, settings: Settings) -> None:
    """Serve the UI under /ui on ``app`` (unless ``ui.enabled`` is false)."""
    config = settings.ui
    if not config.enabled:
        return
    oidc = OidcSignIn(config.oidc, settings.public_url) if config.oidc is not None else None
    app.state.ui = UiState(config, Assets(), settings.public_url, oidc)
    app.include_router(signin_router)
    app.include_router(oidc_router)
    app.include_router(pages_router)
