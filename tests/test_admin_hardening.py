"""Hostile input on the management API: a 4xx naming the field, never a 5xx.

Regressions for what fuzzing and hostile testing found: nulls in fields that cannot be
null, unbounded metadata (integers the audit writer cannot serialize, deep nesting,
huge text), budgets that overflow the ledger, and the 5xx and wrong statuses found by
fuzzing the API's OpenAPI document.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from checks import openai_error
from harness import MASTER_KEY, GatewayServer
from tollway.admin.app import ensure_guarded
from tollway.bounds import (
    MAX_BUDGET_USD,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_FIELDS,
    MAX_METADATA_KEY,
    MAX_METADATA_TEXT,
    SAFE_INT,
)

API = "/api/v1"


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def nested(depth: int) -> Any:
    """A value with ``depth`` objects inside one another."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"in": value}
    return value


@pytest.fixture
def key_id(http: httpx.Client, auth: dict[str, str]) -> str:
    """A fresh key of the default project."""
    response = http.post(f"{API}/keys", json={"name": unique("hardening")}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def project(http: httpx.Client, auth: dict[str, str]) -> str:
    """A fresh project's name."""
    name = unique("hardening")
    response = http.post(f"{API}/projects", json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return name


def refused(response: httpx.Response, param: str) -> dict[str, Any]:
    """A 422 in the OpenAI error shape, naming ``param`` in ``param`` and the message."""
    error = openai_error(response, 422)
    assert error["param"] == param, error
    assert param in error["message"], error
    return error


# --------------------------------------------------------------------------- nulls


@pytest.mark.parametrize("field", ["name", "active"])
def test_null_in_a_key_field_that_cannot_be_null(
    http: httpx.Client, auth: dict[str, str], key_id: str, field: str
) -> None:
    refused(http.patch(f"{API}/keys/{key_id}", json={field: None}, headers=auth), field)
    assert http.get(f"{API}/keys/{key_id}", headers=auth).json()[field] is not None


@pytest.mark.parametrize("field", ["name", "active"])
def test_null_in_a_project_field_that_cannot_be_null(
    http: httpx.Client, auth: dict[str, str], project: str, field: str
) -> None:
    # ``name`` cannot be changed at all; ``active`` can, but not to null.
    refused(http.patch(f"{API}/projects/{project}", json={field: None}, headers=auth), field)


def test_null_still_clears_a_key_limit(
    http: httpx.Client, auth: dict[str, str], key_id: str
) -> None:
    limits = {
        "max_budget_usd": 5,
        "budget_period": "day",
        "rpm": 10,
        "tpm": 1000,
        "max_parallel": 2,
        "max_requests": 100,
        "models": ["gpt-test"],
        "metadata": {"team": "ml"},
    }
    assert http.patch(f"{API}/keys/{key_id}", json=limits, headers=auth).status_code == 200
    cleared = http.patch(f"{API}/keys/{key_id}", json=dict.fromkeys(limits), headers=auth).json()
    assert {name: cleared[name] for name in limits} == {**dict.fromkeys(limits), "metadata": {}}


def test_null_still_clears_a_project_limit(
    http: httpx.Client, auth: dict[str, str], project: str
) -> None:
    body = {"max_budget_usd": 5, "rpm": 10, "credentials": {"oa": "sk-project-0001"}}
    assert http.patch(f"{API}/projects/{project}", json=body, headers=auth).status_code == 200
    cleared = http.patch(f"{API}/projects/{project}", json=dict.fromkeys(body), headers=auth).json()
    assert (cleared["max_budget_usd"], cleared["rpm"]) == (None, None)
    assert cleared["credential_providers"] == []


# --------------------------------------------------------------------------- metadata

BAD_METADATA: list[tuple[str, Any, str]] = [
    ("int-2**64", {"n": 2**64}, "metadata.n"),
    ("int-below", {"n": -(2**64)}, "metadata.n"),
    ("int-past-safe", {"n": SAFE_INT + 1}, "metadata.n"),
    ("int-nested", {"a": {"b": [1, 2**64]}}, "metadata.a.b.1"),
    ("too-deep", {"a": nested(MAX_METADATA_DEPTH + 1)}, "metadata.a.in.in.in.in"),
    ("very-deep", {"a": nested(500)}, "metadata.a.in.in.in.in"),
    ("too-deep-lists", {"a": [[[[[1]]]]]}, "metadata.a.0.0.0.0"),
    ("huge-text", {"s": "x" * (MAX_METADATA_TEXT + 1)}, "metadata.s"),
    ("nul-text", {"s": "a\x00b"}, "metadata.s"),
    (
        "too-many-bytes",
        {f"f{i}": "x" * MAX_METADATA_TEXT for i in range(MAX_METADATA_BYTES // MAX_METADATA_TEXT)},
        "metadata",
    ),
    ("too-many-fields", {f"f{i}": i for i in range(MAX_METADATA_FIELDS + 1)}, "metadata"),
    ("newline-key", {"a\nb": 1}, "metadata"),
    ("control-key", {"a\x7fb": 1}, "metadata"),
    ("c1-key", {"a\x85b": 1}, "metadata"),
    ("empty-key", {"": 1}, "metadata"),
    ("long-key", {"k" * (MAX_METADATA_KEY + 1): 1}, "metadata"),
    ("bad-nested-key", {"a": {"b\tc": 1}}, "metadata.a"),
]


@pytest.mark.parametrize(
    ("metadata", "param"),
    [pytest.param(metadata, param, id=case) for case, metadata, param in BAD_METADATA],
)
@pytest.mark.parametrize("target", ["create-key", "update-key", "create-project", "update-project"])
def test_metadata_out_of_bounds(
    http: httpx.Client,
    auth: dict[str, str],
    key_id: str,
    project: str,
    target: str,
    metadata: Any,
    param: str,
) -> None:
    method, path, body = {
        "create-key": ("POST", f"{API}/keys", {"name": unique("meta")}),
        "update-key": ("PATCH", f"{API}/keys/{key_id}", {}),
        "create-project": ("POST", f"{API}/projects", {"name": unique("meta")}),
        "update-project": ("PATCH", f"{API}/projects/{project}", {}),
    }[target]
    response = http.request(method, path, json={**body, "metadata": metadata}, headers=auth)
    refused(response, param)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -1e999}', b'{"\\ud800": 1}', b'{"a": "\\udfff"}'],
    ids=["nan", "infinity", "overflow", "lone-surrogate-key", "lone-surrogate-text"],
)
def test_metadata_json_only_python_reads(
    http: httpx.Client, auth: dict[str, str], raw: bytes
) -> None:
    content = b'{"name": "meta", "metadata": ' + raw + b"}"
    headers = {**auth, "content-type": "application/json"}
    error = openai_error(http.post(f"{API}/keys", content=content, headers=headers), 422)
    assert error["param"].startswith("metadata"), error


def test_metadata_within_bounds_reads_back(
    http: httpx.Client, auth: dict[str, str], project: str
) -> None:
    metadata = {
        "team": {"name": "ml", "tags": ["a", "b"], "limits": {"x": 1.5, "on": True, "no": None}},
        "deepest": nested(MAX_METADATA_DEPTH),
        "big": SAFE_INT,
        "small": -SAFE_INT,
        "text": "é" * MAX_METADATA_TEXT,
        "k" * MAX_METADATA_KEY: "longest name",
        'quote"and\\slash': "printable names may hold any printable character",
    }
    created = http.post(
        f"{API}/keys", json={"name": unique("meta"), "metadata": metadata}, headers=auth
    )
    assert created.status_code == 201, created.text
    shown = http.get(f"{API}/keys/{created.json()['id']}", headers=auth).json()
    assert shown["metadata"] == metadata
    patched = http.patch(f"{API}/projects/{project}", json={"metadata": metadata}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert http.get(f"{API}/projects/{project}", headers=auth).json()["metadata"] == metadata
    audit = http.get(f"{API}/audit", params={"target": shown["id"]}, headers=auth).json()
    assert audit[0]["details"]["metadata"] == metadata


def test_metadata_filter_on_any_field_name(http: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("filter")
    body = {"name": tag, "metadata": {'say "hi"': tag, "n": 7, "on": True}}
    made = http.post(f"{API}/keys", json=body, headers=auth).json()
    for field, value in [('say "hi"', tag), ("n", "7"), ("on", "true")]:
        params = {f"metadata.{field}": value, "limit": "1000"}
        found = http.get(f"{API}/keys", params=params, headers=auth)
        assert found.status_code == 200, found.text
        assert made["id"] in {key["id"] for key in found.json()}, field


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("path", ["keys", "projects"])
def test_budget_above_the_cap(http: httpx.Client, auth: dict[str, str], path: str) -> None:
    for too_much in (MAX_BUDGET_USD + 1, "1000000000.0000000001", 10**10 - 1):
        body = {"name": unique("budget"), "max_budget_usd": str(too_much)}
        refused(http.post(f"{API}/{path}", json=body, headers=auth), "max_budget_usd")


@pytest.mark.parametrize("path", ["keys", "projects"])
def test_budget_at_the_cap(http: httpx.Client, auth: dict[str, str], path: str) -> None:
    body = {"name": unique("budget"), "max_budget_usd": int(MAX_BUDGET_USD)}
    response = http.post(f"{API}/{path}", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["max_budget_usd"] == str(MAX_BUDGET_USD)


# --------------------------------------------------------------------------- fuzzing finds


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/keys?offset=100000000000000000000", "offset"),
        ("/audit?offset=9223372036854775808", "offset"),
        ("/spend?from=0001-01-01T00:00:00%2B14:00", "from"),
        ("/audit?to=0001-01-01T00:00:00%2B01:00", "to"),
        ("/audit?to=0.5", "to"),
        ("/spend?to=1700000000", "to"),
        ("/keys?project=", "project"),
    ],
)
def test_query_out_of_range(
    http: httpx.Client, auth: dict[str, str], path: str, param: str
) -> None:
    refused(http.get(API + path, headers=auth), param)


def test_query_refused_by_the_route(http: httpx.Client, auth: dict[str, str]) -> None:
    many = {f"metadata.f{i}": "v" for i in range(MAX_METADATA_FIELDS + 1)}
    assert (
        openai_error(http.get(f"{API}/keys", params=many, headers=auth), 400)["param"] == "metadata"
    )
    few = {f"metadata.f{i}": "v" for i in range(MAX_METADATA_FIELDS)}
    assert http.get(f"{API}/keys", params=few, headers=auth).json() == []
    # "key" followed by a newline is not "key" (a "$" in a pattern would let it through).
    response = http.get(f"{API}/spend", params={"group_by": "key\n"}, headers=auth)
    assert openai_error(response, 400)["param"] == "group_by"


@pytest.mark.parametrize(
    ("path", "param"),
    [("/keys/key%00x", "key_id"), ("/projects/a%00", "project_ref"), ("/audit?actor=%00", "actor")],
)
def test_nul_in_the_url(http: httpx.Client, auth: dict[str, str], path: str, param: str) -> None:
    # Postgres refuses NUL in text: refused before any query, on every database alike.
    assert openai_error(http.get(API + path, headers=auth), 400)["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "ok", "expires_at": "0001-01-01T00:00:00+14:00"}, "expires_at"),
        ({"name": "ok", "expires_at": 4102444800}, "expires_at"),
        ({"name": "x\x00y"}, "name"),
        ({"name": "ok", "models": ["a\x00"]}, "models"),
    ],
)
def test_key_body_out_of_range(
    http: httpx.Client, auth: dict[str, str], body: dict[str, Any], param: str
) -> None:
    refused(http.post(f"{API}/keys", json=body, headers=auth), param)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\\ud800"}',
        b'{"name": "p", "project": "\\udc00"}',
        b'{"name": "x", "\\ud800": 1}',
    ],
    ids=["name", "project", "unknown-field"],
)
def test_lone_surrogates(http: httpx.Client, auth: dict[str, str], raw: bytes) -> None:
    headers = {**auth, "content-type": "application/json"}
    openai_error(http.post(f"{API}/keys", content=raw, headers=headers), 422)


def test_credentials_with_lone_surrogates(
    http: httpx.Client, auth: dict[str, str], project: str
) -> None:
    raw = b'{"credentials": {"oa": "sk-\\ud800"}}'
    headers = {**auth, "content-type": "application/json"}
    response = http.patch(f"{API}/projects/{project}", content=raw, headers=headers)
    assert openai_error(response, 422)["param"] == "credentials"


def test_json_types_are_not_coerced(
    http: httpx.Client, auth: dict[str, str], key_id: str, project: str
) -> None:
    refused(http.patch(f"{API}/keys/{key_id}", json={"active": 0}, headers=auth), "active")
    refused(http.patch(f"{API}/projects/{project}", json={"active": "no"}, headers=auth), "active")
    refused(http.patch(f"{API}/keys/{key_id}", json={"rpm": True}, headers=auth), "rpm")
    refused(
        http.patch(f"{API}/keys/{key_id}", json={"max_requests": "5"}, headers=auth), "max_requests"
    )
    refused(http.patch(f"{API}/projects/{project}", json={"tpm": "5"}, headers=auth), "tpm")
    # A whole number written with a fraction is still an integer in JSON.
    assert http.patch(f"{API}/keys/{key_id}", json={"rpm": 5.0}, headers=auth).json()["rpm"] == 5


def test_concurrent_creation_of_one_project_name(gateway: GatewayServer) -> None:
    name = unique("race")

    async def create_all() -> list[int]:
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
            responses = await asyncio.gather(
                *[client.post(f"{API}/projects", json={"name": name}) for _ in range(20)]
            )
        return sorted(response.status_code for response in responses)

    assert asyncio.run(create_all()) == [201] + [400] * 19


def test_405_lists_every_method_of_the_path(
    http: httpx.Client, auth: dict[str, str], key_id: str
) -> None:
    response = http.put(f"{API}/keys/{key_id}", json={}, headers=auth)
    openai_error(response, 405)
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert http.options(f"{API}/keys", headers=auth).headers["allow"] == "GET, POST"


def test_openapi_documents_the_errors(http: httpx.Client) -> None:
    paths = http.get(f"{API}/openapi.json").json()["paths"]
    show = paths[f"{API}/keys/{{key_id}}"]["get"]["responses"]
    assert {"400", "401", "403", "404", "422"} <= set(show)
    shape = show["422"]["content"]["application/json"]["schema"]
    assert shape == {"$ref": "#/components/schemas/ErrorResponse"}
    update = paths[f"{API}/keys/{{key_id}}"]["patch"]["requestBody"]["content"]
    schema = update["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = http.get(f"{API}/openapi.json").json()["components"]["schemas"][schema]
    # null is refused for these, so the document does not offer it.
    for name, kind in [("name", "string"), ("active", "boolean")]:
        assert fields["properties"][name]["type"] == kind
        assert "anyOf" not in fields["properties"][name]


def test_an_unguarded_management_route_is_refused() -> None:
    api = APIRouter(prefix=API)

    @api.get("/open")
    async def open_route() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(api)
    with pytest.raises(RuntimeError, match="/api/v1/open"):
        ensure_guarded(app)
