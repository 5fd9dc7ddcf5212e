"""A small OpenID Connect provider on a real 127.0.0.1 port, for the UI's sign-in tests.

It serves discovery, an authorization page (a person picks one of the scripted users),
a token endpoint and its signing keys, and holds a client to the rules a real provider
does: a known client and redirect URI, the authorization code once, PKCE with S256
(the token request's verifier must hash to the challenge), the client's secret, and an
ID token signed with RS256 carrying the request's nonce. Everything the gateway sent it
is recorded, so a test can read what the flow looked like on the wire.

``forge = True`` signs the next ID tokens with a key the provider does not publish (a
forgery the gateway must refuse).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "tollway-ui"
CLIENT_SECRET = "oidc-client-secret-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body."""
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


@dataclass
class _Grant:
    """An issued authorization code and what it was issued for."""

    user: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    used: bool = False


@dataclass
class FakeOidc:
    """The provider: ``users`` maps a login name to the claims of its ID token."""

    users: dict[str, dict[str, Any]]
    forge: bool = False
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def issuer(self) -> str:
        """The issuer URL (discovery lives under it)."""
        return f"http://127.0.0.1:{self.port}"

    # The endpoints -----------------------------------------------------------------

    async def _discovery(self, _: Request) -> JSONResponse:
        base = self.issuer
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "jwks_uri": base + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def _jwks(self, _: Request) -> JSONResponse:
        numbers = self._key.public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self._kid,
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }
        return JSONResponse({"keys": [jwk]})

    async def _authorize_page(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorizations.append(params)
        problem = self._check_authorization(params)
        if problem:
            return HTMLResponse(f"<p>invalid_request: {html.escape(problem)}</p>", 400)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        buttons = "".join(
            f'<button name="user" value="{html.escape(name)}">{html.escape(name)}</button>'
            for name in self.users
        )
        deny = '<button name="deny" value="1">Deny</button>'
        page = (
            "<!doctype html><title>Test identity provider</title><h1>Choose an account</h1>"
            f'<form method="post" action="/authorize">{hidden}{buttons}{deny}</form>'
        )
        return HTMLResponse(page)

    def _check_authorization(self, params: dict[str, str]) -> str | None:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != CLIENT_ID:
            return "unknown client"
        if not params.get("redirect_uri", "").endswith("/ui/oidc/callback"):
            return "redirect_uri is not registered"
        if "openid" not in params.get("scope", "").split():
            return "scope must include openid"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE with S256 is required"
        if not params.get("state"):
            return "state is required"
        return None

    async def _authorize(self, request: Request) -> Response:
        form = await _form(request)
        problem = self._check_authorization(form)
        if problem:
            return HTMLResponse(f"<p>invalid_request: {html.escape(problem)}</p>", 400)
        back = {"state": form["state"]}
        if form.get("deny") or form.get("user") not in self.users:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._grants[code] = _Grant(
                    form["user"], form["redirect_uri"], form["code_challenge"], form.get("nonce")
                )
            back["code"] = code
        return RedirectResponse(form["redirect_uri"] + "?" + urlencode(back), status_code=302)

    async def _token(self, request: Request) -> JSONResponse:
        form = await _form(request)
        self.token_requests.append(form)
        client_id, secret = self._client_credentials(request, form)
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            grant = self._grants.get(form.get("code", ""))
            if grant is None or grant.used:
                return JSONResponse({"error": "invalid_grant"}, 400)
            grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect"}, 400)
        verifier = form.get("code_verifier", "")
        if not verifier or _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self._id_token(grant),
            },
            headers={"cache-control": "no-store"},
        )

    @staticmethod
    def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            name, _, secret = decoded.partition(":")
            return name, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "sub-" + hashlib.sha256(grant.user.encode()).hexdigest()[:12],
            "iat": now,
            "exp": now + 300,
            **self.users[grant.user],
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        header = {"alg": "RS256", "typ": "JWT", "kid": self._kid}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        key = self._forger if self.forge else self._key
        signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"

    # Serving -----------------------------------------------------------------------

    def start(self) -> FakeOidc:
        """Serve on a free port in a background thread."""
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize_page, methods=["GET"]),
                Route("/authorize", self._authorize, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-oidc", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OIDC provider did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None
