"""Sign-in through an OpenID Connect provider (``ui.oidc``), with Authlib.

The authorization code flow with PKCE (S256) and a nonce: ``/ui/oidc/login`` sends the
browser to the provider, keeping the state, the PKCE verifier and the nonce in a short
cookie sealed with the server secret (AES-GCM; so any gateway process or host can
finish the flow); ``/ui/oidc/callback`` checks the state, trades the code for tokens,
verifies the ID token (signature against the provider's JWKS, issuer, audience, expiry,
nonce) and maps ``role_claim`` to a role through ``roles``. A user no value maps, with
no ``default_role``, is refused.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from tollway.admin.deps import ROLE_RANK, Context
from tollway.auth.secrets import SealError, ServerKeys
from tollway.errors import NotFound
from tollway.ui import sessions
from tollway.ui.config import OidcConfig
from tollway.ui.secure import SecuredRoute, secure_cookie, set_session_cookie
from tollway.ui.state import Ui, UiState

log = logging.getLogger("tollway.ui")
router = APIRouter(prefix="/ui/oidc", include_in_schema=False, route_class=SecuredRoute)
PENDING_COOKIE = "tollway_oidc"
_PENDING_SECONDS = 600
_SEAL_CONTEXT = "ui-oidc-pending"
CALLBACK_PATH = "/ui/oidc/callback"


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class OidcSignIn:
    """The configured provider, its Authlib client (built on first use), and the role
    and name a provider's claims give a user."""

    def __init__(self, config: OidcConfig, public_url: str | None) -> None:
        self.config = config
        self.public_url = public_url
        self._client: Any = None

    def client(self) -> Any:
        """Authlib's OAuth 2 client for the provider (discovery read on first use)."""
        if self._client is None:
            # Loaded only when OIDC is configured and used.
            from authlib.integrations.starlette_client import OAuth

            config = self.config
            secret = config.client_secret.get_secret_value() if config.client_secret else None
            options: dict[str, Any] = {
                "scope": " ".join(config.scopes),
                "code_challenge_method": "S256",
                "timeout": 10.0,
            }
            if secret is None:
                # A public client: PKCE alone proves the code is ours.
                options["token_endpoint_auth_method"] = "none"  # noqa: S105 (a method name)
            self._client = OAuth().register(
                "tollway",
                client_id=config.client_id,
                client_secret=secret,
                server_metadata_url=config.issuer + "/.well-known/openid-configuration",
                client_kwargs=options,
            )
        return self._client

    def redirect_url(self, request: Request) -> str:
        """Where the provider sends the browser back (registered with the provider)."""
        if self.config.redirect_url is not None:
            return self.config.redirect_url
        base = self.public_url or f"{request.url.scheme}://{request.url.netloc}"
        return base.rstrip("/") + CALLBACK_PATH

    def role(self, claims: Mapping[str, Any]) -> str | None:
        """The highest role a value of ``role_claim`` maps to, else ``default_role``."""
        value = _claim(claims, self.config.role_claim)
        values = value if isinstance(value, list) else [value]
        roles = [
            self.config.roles[v] for v in values if isinstance(v, str) and v in self.config.roles
        ]
        if roles:
            return max(roles, key=ROLE_RANK.__getitem__)
        return self.config.default_role

    def actor(self, claims: Mapping[str, Any]) -> str:
        """The user as the audit log names them."""
        name = _claim(claims, self.config.actor_claim)
        if not isinstance(name, str) or not name:
            name = str(claims.get("sub", "unknown"))
        return "oidc:" + name


def _configured(ui: UiState) -> OidcSignIn:
    if ui.oidc is None:
        raise NotFound("OIDC sign-in is not configured (ui.oidc).")
    return ui.oidc


def _next(value: str | None) -> str:
    """A page of the UI to land on (never another site)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


def _failed(reason: str) -> Response:
    response = RedirectResponse("/ui/login?" + urlencode({"error": reason}), status_code=303)
    response.delete_cookie(PENDING_COOKIE, path="/ui/oidc")
    return response


def _pending(request: Request, keys: ServerKeys) -> dict[str, Any] | None:
    sealed = request.cookies.get(PENDING_COOKIE)
    if not sealed:
        return None
    try:
        pending = orjson.loads(keys.open(sealed, _SEAL_CONTEXT))
    except (SealError, ValueError):
        return None
    if not isinstance(pending, dict) or pending.get("expires", 0) < time.time():
        return None
    return pending


@router.get("/login")
async def oidc_login(request: Request, ctx: Context, ui: Ui) -> Response:
    """Send the browser to the provider to sign in."""
    oidc = _configured(ui)
    redirect_uri = oidc.redirect_url(request)
    try:
        started = await oidc.client().create_authorization_url(redirect_uri)
    except Exception:  # the edge: a provider that cannot be reached or read
        log.warning("OIDC provider unavailable", exc_info=True)
        return _failed("oidc_unavailable")
    pending = {
        "state": started["state"],
        "code_verifier": started["code_verifier"],
        "nonce": started["nonce"],
        "redirect_uri": redirect_uri,
        "next": _next(request.query_params.get("next")),
        "expires": time.time() + _PENDING_SECONDS,
    }
    response = RedirectResponse(started["url"], status_code=303)
    # Lax, not Strict: the provider's redirect back is a cross-site navigation.
    response.set_cookie(
        PENDING_COOKIE,
        ctx.server_keys.seal(orjson.dumps(pending), _SEAL_CONTEXT),
        max_age=_PENDING_SECONDS,
        path="/ui/oidc",
        secure=secure_cookie(request, ui.config),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/callback")
async def oidc_callback(request: Request, ctx: Context, ui: Ui) -> Response:
    """Finish the sign-in the provider sends back: a session, or the sign-in page with
    the reason."""
    oidc = _configured(ui)
    params = request.query_params
    pending = _pending(request, ctx.server_keys)
    if params.get("error"):
        return _failed("oidc_denied")
    if pending is None:
        return _failed("oidc_expired")
    if not hmac.compare_digest(str(pending["state"]).encode(), params.get("state", "").encode()):
        return _failed("oidc_state")
    try:
        client = oidc.client()
        token = await client.fetch_access_token(
            redirect_uri=pending["redirect_uri"],
            code=params.get("code", ""),
            code_verifier=pending["code_verifier"],
        )
        claims = dict(await client.parse_id_token(token, nonce=pending["nonce"]))
    except Exception:  # the edge: whatever the provider or its token got wrong
        log.warning("OIDC sign-in failed", exc_info=True)
        return _failed("oidc_failed")
    role = oidc.role(claims)
    actor = oidc.actor(claims)
    if role is None:
        log.warning("OIDC user has no role", extra={"fields": {"actor": actor[:80]}})
        return _failed("oidc_no_role")
    signed_in = await sessions.start(
        ctx.db,
        ctx.server_keys,
        kind="oidc",
        actor=actor,
        role=role,
        ttl_seconds=ui.config.session_ttl,
        user_agent=request.headers.get("user-agent"),
    )
    # A page that moves on by itself, not a redirect: a SameSite=Strict cookie is not
    # sent on a redirect chain that began on another site (the provider).
    asset = ui.assets.get("continue.html")
    assert asset is not None
    response = Response(asset.body, media_type=asset.content_type)
    response.headers["refresh"] = "0; url=" + _next(pending.get("next"))
    set_session_cookie(response, request, ui.config, signed_in.token, ui.config.session_ttl)
    response.delete_cookie(PENDING_COOKIE, path="/ui/oidc")
    return response
