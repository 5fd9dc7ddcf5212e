"""Server-side sessions of the admin UI.

A sign-in (the master key, an admin key, or OIDC) mints a random 256-bit token, sent
to the browser only as an HttpOnly cookie; the database keeps its keyed hash, who it
is, the role and the expiry. Every request looks the session up again, so a sign-out,
an expiry, a revoked admin key or a rotated master key ends it on every process at once.

Writes made with the cookie also need the session's CSRF token in ``x-csrf-token``: an
HMAC of the session token, which the page reads from ``GET /ui/session`` (same origin
only) and a cross-site page cannot learn. It is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from starlette.requests import Request

from tollway.audit.chain import append
from tollway.auth.secrets import ServerKeys
from tollway.errors import Forbidden
from tollway.store.db import Database
from tollway.store.ids import as_utc, new_id, utcnow
from tollway.store.tables import AdminKey, UiSession

COOKIE = "tollway_session"
# Over TLS the cookie takes the __Host- prefix: the browser then refuses it unless it is
# Secure, host-only and for the whole site, so no other subdomain can plant or read one.
SECURE_COOKIE = "__Host-" + COOKIE
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PRUNE_AFTER = timedelta(days=1)  # expired rows are deleted at sign-ins, a day late


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, with which role, until when."""

    id: str
    kind: str
    actor: str
    role: str
    expires_at: datetime
    token: str


def csrf_token(keys: ServerKeys, token: str) -> str:
    """The CSRF token of a session: a keyed hash of its token."""
    return hmac.new(keys.hashing, b"ui-csrf:" + token.encode(), hashlib.sha256).hexdigest()


def presented_token(request: Request) -> str | None:
    """The session token in the request's cookie, if any."""
    for name in (SECURE_COOKIE, COOKIE):
        value = request.cookies.get(name)
        if value:
            return value
    return None


def _hash(keys: ServerKeys, token: str) -> str:
    return keys.hash_key("ui-session:" + token)


async def start(
    db: Database,
    keys: ServerKeys,
    *,
    kind: str,
    actor: str,
    role: str,
    ttl_seconds: int,
    admin_key_id: str | None = None,
    master_hash: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Open a session (audited as ``ui.signed_in``); the token is returned, not stored."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = UiSession(
        token_hash=_hash(keys, token),
        id=new_id("ses"),
        kind=kind,
        actor=actor[:80],
        role=role,
        admin_key_id=admin_key_id,
        master_hash=master_hash,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        user_agent=(user_agent or "")[:300] or None,
    )
    async with db.transaction() as session:
        await session.execute(delete(UiSession).where(UiSession.expires_at < now - _PRUNE_AFTER))
        session.add(row)
        await append(
            session,
            keys.audit,
            actor=row.actor,
            action="ui.signed_in",
            target_type="ui_session",
            target_id=row.id,
            details={"via": kind, "role": role},
        )
    return SignedIn(row.id, kind, row.actor, role, row.expires_at, token)


async def find(db: Database, keys: ServerKeys, master_key: bytes, token: str) -> SignedIn | None:
    """The live session a token opens, or None (unknown, expired, its admin key revoked,
    or signed in with a master key that is no longer the master key)."""
    query = (
        select(UiSession, AdminKey.role, AdminKey.active)
        .outerjoin(AdminKey, AdminKey.id == UiSession.admin_key_id)
        .where(UiSession.token_hash == _hash(keys, token))
    )
    async with db.reader() as session:
        found = (await session.execute(query)).first()
    if found is None:
        return None
    row, key_role, key_active = found
    expires_at = as_utc(row.expires_at)
    if expires_at is None or expires_at <= utcnow():
        return None
    role = row.role
    if row.kind == "admin_key":
        # The key's current state decides: a revoked key's sessions end with it.
        if not key_active or key_role is None:
            return None
        role = key_role
    elif row.kind == "master":
        current = keys.hash_key(master_key.decode())
        if row.master_hash is None or not hmac.compare_digest(row.master_hash, current):
            return None
    return SignedIn(row.id, row.kind, row.actor, role, expires_at, token)


async def end(db: Database, keys: ServerKeys, signed_in: SignedIn) -> None:
    """Sign out: the session row goes (audited as ``ui.signed_out``)."""
    async with db.transaction() as session:
        gone = await session.execute(
            delete(UiSession).where(UiSession.token_hash == _hash(keys, signed_in.token))
        )
        if getattr(gone, "rowcount", 0):
            await append(
                session,
                keys.audit,
                actor=signed_in.actor,
                action="ui.signed_out",
                target_type="ui_session",
                target_id=signed_in.id,
            )


def check_csrf(request: Request, keys: ServerKeys, signed_in: SignedIn) -> None:
    """A 403 unless a write carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    expected = csrf_token(keys, signed_in.token)
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            f"A change made with a UI session needs its CSRF token in the {CSRF_HEADER} "
            "header; reload the page and try again."
        )


async def admitted(
    request: Request, db: Database, keys: ServerKeys, master_key: bytes
) -> SignedIn | None:
    """The session a management request's cookie opens (its CSRF token checked on
    writes), or None when it carries no live one."""
    token = presented_token(request)
    if token is None:
        return None
    signed_in = await find(db, keys, master_key, token)
    if signed_in is not None:
        check_csrf(request, keys, signed_in)
    return signed_in
