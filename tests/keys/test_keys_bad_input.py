"""Bad input on every management endpoint: a clear 4xx naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from keys_support import (
    ServedGateway,
    created,
    management_error,
    new_key,
    new_project,
    ok,
    unique,
)

PAST = "2020-01-01T00:00:00Z"
FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def targets(gw: ServedGateway) -> dict[str, Any]:
    """Existing rows to aim updates at: a live key, a revoked key, a project."""
    with gw.admin() as api:
        live = new_key(api, name="bad-input live")
        revoked = new_key(api, name="bad-input revoked")
        ok(api.delete(f"/keys/{revoked['id']}"))
        project = new_project(api, unique("bad-input"))
    return {"key": live["id"], "revoked": revoked["id"], "project": project["name"]}


# (id, method, path, json body, expected status(es), param the error must name)
CASES: list[tuple[str, str, str, Any, int | tuple[int, ...], str | None]] = [
    ("ttl-unit", "POST", "/keys", {"name": "x", "ttl": "5q"}, 422, "ttl"),
    ("ttl-negative", "POST", "/keys", {"name": "x", "ttl": -1}, 422, "ttl"),
    ("ttl-zero", "POST", "/keys", {"name": "x", "ttl": 0}, 422, "ttl"),
    ("ttl-zero-string", "POST", "/keys", {"name": "x", "ttl": "0s"}, 422, "ttl"),
    ("ttl-words", "POST", "/keys", {"name": "x", "ttl": "abc"}, 422, "ttl"),
    ("ttl-negative-string", "POST", "/keys", {"name": "x", "ttl": "-5m"}, 422, "ttl"),
    ("ttl-fraction", "POST", "/keys", {"name": "x", "ttl": 1.5}, 422, "ttl"),
    ("ttl-too-long", "POST", "/keys", {"name": "x", "ttl": "99999d"}, 422, "ttl"),
    ("ttl-list", "POST", "/keys", {"name": "x", "ttl": ["1h"]}, 422, "ttl"),
    (
        "ttl-and-expires",
        "POST",
        "/keys",
        {"name": "x", "ttl": "1h", "expires_at": FUTURE},
        400,
        "ttl",
    ),
    ("expires-past", "POST", "/keys", {"name": "x", "expires_at": PAST}, 422, "expires_at"),
    ("expires-garbage", "POST", "/keys", {"name": "x", "expires_at": "soon"}, 422, "expires_at"),
    ("rpm-string", "POST", "/keys", {"name": "x", "rpm": "x"}, 422, "rpm"),
    ("rpm-negative", "POST", "/keys", {"name": "x", "rpm": -1}, 422, "rpm"),
    ("rpm-zero", "POST", "/keys", {"name": "x", "rpm": 0}, 422, "rpm"),
    ("tpm-negative", "POST", "/keys", {"name": "x", "tpm": -100}, 422, "tpm"),
    ("parallel-zero", "POST", "/keys", {"name": "x", "max_parallel": 0}, 422, "max_parallel"),
    ("max-requests-neg", "POST", "/keys", {"name": "x", "max_requests": -3}, 422, "max_requests"),
    (
        "budget-negative",
        "POST",
        "/keys",
        {"name": "x", "max_budget_usd": -5},
        422,
        "max_budget_usd",
    ),
    (
        "budget-text",
        "POST",
        "/keys",
        {"name": "x", "max_budget_usd": "lots"},
        422,
        "max_budget_usd",
    ),
    ("budget-nan", "POST", "/keys", {"name": "x", "max_budget_usd": "NaN"}, 422, "max_budget_usd"),
    ("period-week", "POST", "/keys", {"name": "x", "budget_period": "week"}, 422, "budget_period"),
    ("models-string", "POST", "/keys", {"name": "x", "models": "gpt"}, 422, "models"),
    ("models-empty-name", "POST", "/keys", {"name": "x", "models": [""]}, 422, "models"),
    ("models-numbers", "POST", "/keys", {"name": "x", "models": [1, 2]}, 422, "models"),
    ("metadata-list", "POST", "/keys", {"name": "x", "metadata": ["a"]}, 422, "metadata"),
    ("metadata-string", "POST", "/keys", {"name": "x", "metadata": "org=acme"}, 422, "metadata"),
    (
        "metadata-too-big",
        "POST",
        "/keys",
        {"name": "x", "metadata": {f"f{i}": i for i in range(65)}},
        422,
        "metadata",
    ),
    ("name-missing", "POST", "/keys", {"ttl": "1h"}, 422, "name"),
    ("name-empty", "POST", "/keys", {"name": ""}, 422, "name"),
    ("name-too-long", "POST", "/keys", {"name": "n" * 201}, 422, "name"),
    ("name-number", "POST", "/keys", {"name": 7}, 422, "name"),
    ("unknown-field", "POST", "/keys", {"name": "x", "modles": ["gpt-mini"]}, 422, "modles"),
    (
        "unknown-project",
        "POST",
        "/keys",
        {"name": "x", "project": "no-such-project"},
        400,
        "project",
    ),
    ("body-list", "POST", "/keys", [{"name": "x"}], 422, None),
    ("body-null", "POST", "/keys", None, 422, None),
    ("patch-unknown-field", "PATCH", "/keys/{key}", {"nmae": "y"}, 422, "nmae"),
    ("patch-rpm-string", "PATCH", "/keys/{key}", {"rpm": "x"}, 422, "rpm"),
    ("patch-models-string", "PATCH", "/keys/{key}", {"models": "gpt"}, 422, "models"),
    ("patch-metadata-list", "PATCH", "/keys/{key}", {"metadata": [1]}, 422, "metadata"),
    ("patch-active-text", "PATCH", "/keys/{key}", {"active": "maybe"}, 422, "active"),
    ("patch-ttl", "PATCH", "/keys/{key}", {"ttl": "1h"}, 422, "ttl"),
    ("patch-max-requests-0", "PATCH", "/keys/{key}", {"max_requests": 0}, 422, "max_requests"),
    ("reactivate-revoked", "PATCH", "/keys/{revoked}", {"active": True}, 400, "active"),
    ("patch-unknown-key", "PATCH", "/keys/key_doesnotexist", {"rpm": 5}, 404, None),
    ("get-unknown-key", "GET", "/keys/key_doesnotexist", None, 404, None),
    ("delete-unknown-key", "DELETE", "/keys/key_doesnotexist", None, 404, None),
    ("list-active-text", "GET", "/keys?active=maybe", None, 422, "active"),
    ("list-limit-zero", "GET", "/keys?limit=0", None, 422, "limit"),
    ("list-limit-huge", "GET", "/keys?limit=100000", None, 422, "limit"),
    ("list-offset-negative", "GET", "/keys?offset=-1", None, 422, "offset"),
    ("list-unknown-project", "GET", "/keys?project=no-such-project", None, 400, "project"),
    ("project-duplicate", "POST", "/projects", {"name": "{project}"}, (400, 409), "name"),
    ("project-bad-name", "POST", "/projects", {"name": "has spaces!"}, 422, "name"),
    ("project-no-name", "POST", "/projects", {}, 422, "name"),
    ("project-rpm-string", "POST", "/projects", {"name": "p-x1", "rpm": "x"}, 422, "rpm"),
    (
        "project-budget-neg",
        "POST",
        "/projects",
        {"name": "p-x2", "max_budget_usd": -1},
        422,
        "max_budget_usd",
    ),
    (
        "project-creds-list",
        "POST",
        "/projects",
        {"name": "p-x3", "credentials": ["k"]},
        422,
        "credentials",
    ),
    (
        "project-creds-nested",
        "POST",
        "/projects",
        {"name": "p-x4", "credentials": {"oa": 1}},
        422,
        "credentials",
    ),
    ("project-unknown-field", "POST", "/projects", {"name": "p-x5", "budget": 5}, 422, "budget"),
    ("project-patch-rename", "PATCH", "/projects/{project}", {"name": "other"}, 422, "name"),
    ("project-patch-active", "PATCH", "/projects/{project}", {"active": "no way"}, 422, "active"),
    ("project-patch-tpm", "PATCH", "/projects/{project}", {"tpm": -1}, 422, "tpm"),
    ("project-patch-unknown", "PATCH", "/projects/no-such-project", {"rpm": 1}, 404, None),
    ("project-show-unknown", "GET", "/projects/no-such-project", None, 404, None),
    ("project-revoke-unknown", "POST", "/projects/no-such-project/revoke-keys", None, 404, None),
    ("projects-active-text", "GET", "/projects?active=perhaps", None, 422, "active"),
    ("admin-key-role", "POST", "/admin-keys", {"name": "a", "role": "root"}, 422, "role"),
    ("admin-key-no-role", "POST", "/admin-keys", {"name": "a"}, 422, "role"),
    ("admin-key-extra", "POST", "/admin-keys", {"name": "a", "role": "viewer", "x": 1}, 422, "x"),
    ("admin-key-unknown", "DELETE", "/admin-keys/adm_doesnotexist", None, 404, None),
    ("audit-from-text", "GET", "/audit?from=yesterday", None, 422, "from"),
    ("audit-to-text", "GET", "/audit?to=later", None, 422, "to"),
    ("audit-limit-huge", "GET", "/audit?limit=5000", None, 422, "limit"),
]


@pytest.fixture
def api(gw: ServedGateway) -> Iterator[httpx.Client]:
    """The management API as the master key."""
    with gw.admin() as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_a_clear_4xx(
    api: httpx.Client,
    targets: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    status: int | tuple[int, ...],
    param: str | None,
) -> None:
    path = path.format(**targets)
    if isinstance(body, dict) and body.get("name") == "{project}":
        body = {"name": targets["project"]}
    kwargs: dict[str, Any] = {}
    if body is not None or method in ("POST", "PATCH"):
        kwargs["json"] = body
    error = management_error(api.request(method, path, **kwargs), status)
    if param is not None:
        assert error["param"] is not None and error["param"].split(".")[0] == param, error
        if status == 422:
            assert param in error["message"], error


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/keys"),
        ("PATCH", "/keys/{key}"),
        ("POST", "/projects"),
        ("PATCH", "/projects/{project}"),
        ("POST", "/admin-keys"),
    ],
)
@pytest.mark.parametrize(
    "raw",
    [b'{"name": "x",', b"not json", b"", b"\xff\xfe\x00", b'{"name": "x"} trailing'],
    ids=["truncated", "text", "empty", "binary", "trailing"],
)
def test_malformed_json_body(
    api: httpx.Client, targets: dict[str, Any], method: str, path: str, raw: bytes
) -> None:
    response = api.request(
        method,
        path.format(**targets),
        content=raw,
        headers={"content-type": "application/json"},
    )
    management_error(response, (400, 422))


def test_wrong_content_type_is_refused(api: httpx.Client) -> None:
    response = api.post(
        "/keys", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    management_error(response, (400, 415, 422))


def test_refused_create_leaves_nothing_behind(api: httpx.Client) -> None:
    name = unique("never-created")
    management_error(api.post("/keys", json={"name": name, "ttl": "5q"}), 422)
    management_error(api.post("/keys", json={"name": name, "project": "nope"}), 400)
    names = {row["name"] for row in ok(api.get("/keys", params={"limit": 1000}))}
    assert name not in names
    actions = ok(api.get("/audit", params={"limit": 1000}))
    assert all(entry["details"].get("name") != name for entry in actions)


def test_expires_at_without_zone_is_utc(api: httpx.Client) -> None:
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    body = created(api.post("/keys", json={"name": "naive", "expires_at": at.isoformat()}))
    assert body["expires_at"] == at.isoformat() + "Z"


def test_revoked_key_can_still_be_renamed_but_not_reactivated(
    api: httpx.Client, targets: dict[str, Any]
) -> None:
    renamed = ok(api.patch(f"/keys/{targets['revoked']}", json={"name": "renamed-revoked"}))
    assert renamed["status"] == "revoked"
    management_error(api.patch(f"/keys/{targets['revoked']}", json={"active": True}), 400)
    assert ok(api.get(f"/keys/{targets['revoked']}"))["status"] == "revoked"


def test_boolean_ttl_is_refused(api: httpx.Client) -> None:
    error = management_error(api.post("/keys", json={"name": "x", "ttl": True}), 422)
    assert error["param"].startswith("ttl")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/keys", {"name": "x", "rpm": 10**20}),
        ("POST", "/keys", {"name": "x", "max_requests": 10**20}),
        ("PATCH", "/keys/{key}", {"tpm": 10**20}),
        ("POST", "/projects", {"name": "huge-limit", "max_parallel": 10**20}),
    ],
    ids=["create-rpm", "create-max-requests", "patch-tpm", "project-parallel"],
)
def test_huge_limits_are_a_4xx_not_a_500(
    api: httpx.Client, targets: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    response = api.request(method, path.format(**targets), json=body)
    assert response.status_code < 500, response.text
    management_error(response, (400, 422))


def test_malformed_json_names_the_body(api: httpx.Client) -> None:
    response = api.post(
        "/keys", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    assert management_error(response, 422)["param"] == "body"


def test_method_not_allowed_has_a_meaningful_code(api: httpx.Client) -> None:
    error = management_error(api.put("/keys", json={}), 405)
    assert error["code"] != "internal_error"
