"""Who may call the management API: master key, admin keys by role, and nobody else."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from keys_support import (
    MASTER_KEY,
    ServedGateway,
    created,
    management_error,
    new_key,
    new_project,
    ok,
    raw_chat,
    unique,
)

ROLES = ("admin", "operator", "viewer")


@pytest.fixture(scope="module")
def role_keys(gw: ServedGateway) -> dict[str, str]:
    """An admin key for each role, minted by the master key; plus the master key."""
    keys = {"master": MASTER_KEY}
    with gw.admin() as api:
        for role in ROLES:
            body = created(api.post("/admin-keys", json={"name": f"rbac {role}", "role": role}))
            assert body["role"] == role
            assert body["key"].startswith("sk-tw-admin-")
            keys[role] = body["key"]
    return keys


@pytest.fixture(scope="module")
def master_api(gw: ServedGateway) -> Iterator[httpx.Client]:
    """The management API as the master key, for setting up targets."""
    with gw.admin() as client:
        yield client


# Each action: (name, minimum role, call(api_as_caller, master_api) -> response).
Action = Callable[[httpx.Client, httpx.Client], httpx.Response]


def _key_target(master: httpx.Client) -> str:
    return str(new_key(master, name=unique("rbac-target"))["id"])


def _project_target(master: httpx.Client) -> str:
    return str(new_project(master, unique("rbac"))["id"])


def _admin_key_target(master: httpx.Client) -> str:
    body = created(master.post("/admin-keys", json={"name": unique("victim"), "role": "viewer"}))
    return str(body["id"])


ACTIONS: list[tuple[str, str, Action]] = [
    ("GET /keys", "viewer", lambda c, m: c.get("/keys")),
    ("GET /keys/{id}", "viewer", lambda c, m: c.get(f"/keys/{_key_target(m)}")),
    ("POST /keys", "operator", lambda c, m: c.post("/keys", json={"name": unique("rbac")})),
    (
        "PATCH /keys/{id}",
        "operator",
        lambda c, m: c.patch(f"/keys/{_key_target(m)}", json={"metadata": {"by": "rbac"}}),
    ),
    ("DELETE /keys/{id}", "operator", lambda c, m: c.delete(f"/keys/{_key_target(m)}")),
    ("GET /projects", "viewer", lambda c, m: c.get("/projects")),
    ("GET /projects/{id}", "viewer", lambda c, m: c.get(f"/projects/{_project_target(m)}")),
    ("POST /projects", "operator", lambda c, m: c.post("/projects", json={"name": unique("r")})),
    (
        "PATCH /projects/{id}",
        "operator",
        lambda c, m: c.patch(f"/projects/{_project_target(m)}", json={"rpm": 10}),
    ),
    (
        "POST /projects/{id}/revoke-keys",
        "operator",
        lambda c, m: c.post(f"/projects/{_project_target(m)}/revoke-keys"),
    ),
    ("GET /audit", "admin", lambda c, m: c.get("/audit")),
    ("GET /audit/verify", "admin", lambda c, m: c.get("/audit/verify")),
    ("GET /admin-keys", "admin", lambda c, m: c.get("/admin-keys")),
    (
        "POST /admin-keys",
        "admin",
        lambda c, m: c.post("/admin-keys", json={"name": unique("a"), "role": "viewer"}),
    ),
    (
        "DELETE /admin-keys/{id}",
        "admin",
        lambda c, m: c.delete(f"/admin-keys/{_admin_key_target(m)}"),
    ),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2, "master": 3}


def _cases() -> Iterator[Any]:
    for caller in ("master", *ROLES):
        for name, minimum, action in ACTIONS:
            allowed = RANK[caller] >= RANK[minimum]
            yield pytest.param(caller, action, allowed, id=f"{caller}-{name}")


@pytest.mark.parametrize(("caller", "action", "allowed"), list(_cases()))
def test_role_matrix(
    gw: ServedGateway,
    role_keys: dict[str, str],
    master_api: httpx.Client,
    caller: str,
    action: Action,
    allowed: bool,
) -> None:
    with gw.admin(role_keys[caller]) as client:
        response = action(client, master_api)
    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        error = management_error(response, 403)
        assert caller in error["message"]


def test_actor_of_an_admin_key_is_recorded(gw: ServedGateway, role_keys: dict[str, str]) -> None:
    with gw.admin(role_keys["operator"]) as operator:
        body = new_key(operator, name=unique("by-operator"))
    assert re.fullmatch(r"admin_key:adm_[0-9a-f]+", body["created_by"])
    with gw.admin() as master:
        entries = ok(master.get("/audit", params={"target": body["id"]}))
    assert [e["actor"] for e in entries] == [body["created_by"]]


def test_admin_keys_are_listed_without_secrets(
    gw: ServedGateway, role_keys: dict[str, str]
) -> None:
    with gw.admin() as master:
        response = master.get("/admin-keys")
    listed = ok(response)
    assert {"rbac admin", "rbac operator", "rbac viewer"} <= {row["name"] for row in listed}
    for secret in role_keys.values():
        assert secret not in response.text
    assert all("key" not in row for row in listed)


def test_revoked_admin_key_is_401(gw: ServedGateway) -> None:
    with gw.admin() as master:
        body = created(master.post("/admin-keys", json={"name": "short-lived", "role": "admin"}))
        with gw.admin(body["key"]) as client:
            ok(client.get("/keys"))
        revoked = ok(master.delete(f"/admin-keys/{body['id']}"))
        assert revoked["active"] is False
        with gw.admin(body["key"]) as client:
            management_error(client.get("/keys"), 401)
            management_error(client.post("/keys", json={"name": "x"}), 401)


def test_revoking_an_admin_key_twice_is_audited_once(gw: ServedGateway) -> None:
    with gw.admin() as master:
        body = created(master.post("/admin-keys", json={"name": unique("twice"), "role": "viewer"}))
        assert ok(master.delete(f"/admin-keys/{body['id']}"))["active"] is False
        assert ok(master.delete(f"/admin-keys/{body['id']}"))["active"] is False
        entries = ok(master.get("/audit", params={"target": body["id"]}))
    assert [entry["action"] for entry in entries] == ["admin_key.revoked", "admin_key.created"]


def test_admin_and_master_headers(gw: ServedGateway, role_keys: dict[str, str]) -> None:
    for header in ("x-api-key", "api-key", "x-goog-api-key"):
        with httpx.Client(base_url=gw.url + "/api/v1", headers={header: MASTER_KEY}) as client:
            ok(client.get("/keys", params={"limit": 1}))
        with httpx.Client(
            base_url=gw.url + "/api/v1", headers={header: role_keys["viewer"]}
        ) as client:
            ok(client.get("/projects"))


def test_admin_key_is_not_a_proxy_key(gw: ServedGateway, role_keys: dict[str, str]) -> None:
    for role in ROLES:
        response = raw_chat(gw.url, {"authorization": f"Bearer {role_keys[role]}"})
        assert response.status_code == 401, response.text


# --------------------------------------------------------------------------- fail closed


def _openapi_routes(gw: ServedGateway) -> list[tuple[str, str]]:
    with httpx.Client(timeout=10) as client:
        document = ok(client.get(gw.url + "/api/v1/openapi.json"))
    routes = []
    for path, methods in document["paths"].items():
        for method in methods:
            if method in ("get", "post", "put", "patch", "delete"):
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return routes


# Served to anyone on purpose: liveness and readiness probes carry no data.
PUBLIC = {("GET", "/health/live"), ("GET", "/health/ready")}


def _bad_credentials(gw: ServedGateway, master_api: httpx.Client) -> dict[str, dict[str, str]]:
    virtual = new_key(master_api, name=unique("not-admin"))["key"]
    return {
        "none": {},
        "random": {"authorization": "Bearer definitely-not-a-key"},
        "random-x-api-key": {"x-api-key": "sk-tw-admin-" + "A" * 43},
        "virtual-key": {"authorization": f"Bearer {virtual}"},
        "virtual-key-x-api-key": {"x-api-key": virtual},
        "master-key-prefix": {"authorization": f"Bearer {MASTER_KEY[:-1]}"},
        "master-key-longer": {"authorization": f"Bearer {MASTER_KEY}0"},
        "basic-scheme": {"authorization": f"Basic {MASTER_KEY}"},
    }


def test_every_documented_route_fails_closed(gw: ServedGateway, master_api: httpx.Client) -> None:
    routes = _openapi_routes(gw)
    management = [route for route in routes if route not in PUBLIC]
    assert len(management) >= 15, routes
    assert all(path.startswith("/api/v1/") for _, path in management), management
    credentials = _bad_credentials(gw, master_api)
    failures = []
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for method, path in management:
            body = {"name": "x", "role": "admin"} if method in ("POST", "PATCH") else None
            for label, headers in credentials.items():
                response = client.request(method, path, headers=headers, json=body)
                if response.status_code != 401:
                    failures.append((method, path, label, response.status_code))
                    continue
                error = management_error(response, 401)
                assert error["code"] == "invalid_api_key"
        for method, path in PUBLIC:
            assert client.request(method, path).status_code == 200
    assert not failures, failures
