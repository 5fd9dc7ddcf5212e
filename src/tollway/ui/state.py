"""The UI's state on the management app, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from tollway.ui.assets import Assets
from tollway.ui.config import UiConfig

if TYPE_CHECKING:
    from tollway.ui.oidc import OidcSignIn


@dataclass(frozen=True)
class UiState:
    """What the UI's routes need, built once with the app."""

    config: UiConfig
    assets: Assets
    public_url: str | None
    oidc: OidcSignIn | None


def ui_state(request: Request) -> UiState:
    """The app's UI state."""
    state: UiState = request.app.state.ui
    return state


Ui = Annotated[UiState, Depends(ui_state)]
