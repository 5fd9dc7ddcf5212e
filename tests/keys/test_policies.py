"""Per-project and per-key policies: guards, CORS origins, cache (and the project's model
scope, see test_model_groups.py): stored, shown, audited, validated with a 4xx naming
the field, and carried into the hot path's ``KeyEntry`` without another query."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from keys_support import (
    MASTER_KEY,
    ServedGateway,
    management_error,
    new_key,
    new_project,
    ok,
    run_cli,
    unique,
)

from tollway.auth.directory import CachePolicy, GuardSetting, KeyDirectory
from tollway.auth.secrets import ServerKeys
from tollway.settings import load_settings
from tollway.store.db import Database

GUARDS = {
    "pii": {"action": "redact", "kinds": ["email", "phone"]},
    "secrets": {"action": "block"},
    "injection": {"action": "flag", "threshold": 0.8},
    "my_plugin": {"action": "off"},
}


def test_project_policies_round_trip(api: httpx.Client) -> None:
    body = {
        "guards": GUARDS,
        "cors_origins": ["https://App.Example.com", "http://localhost:3000", "https://x.io:443"],
        "cache": {"enabled": True, "ttl": 120},
    }
    project = new_project(api, unique("policy"), **body)
    expected = {
        "guards": GUARDS,
        # Normalized as browsers send Origin: lowercase, no default port.
        "cors_origins": ["https://app.example.com", "http://localhost:3000", "https://x.io"],
        "cache": {"enabled": True, "ttl": 120},
        "models": None,
    }
    assert {name: project[name] for name in expected} == expected
    shown = ok(api.get(f"/projects/{project['id']}"))
    assert {name: shown[name] for name in expected} == expected
    listed = [p for p in ok(api.get("/projects")) if p["id"] == project["id"]]
    assert {name: listed[0][name] for name in expected} == expected

    changed = ok(
        api.patch(
            f"/projects/{project['id']}",
            json={"cache": {"enabled": False}, "cors_origins": ["*"], "guards": {}},
        )
    )
    assert changed["cache"] == {
        "enabled": False,
        "ttl": None,
    }  # unset: the model's or the gateway's
    assert changed["cors_origins"] == ["*"]
    assert changed["guards"] == {}
    cleared = ok(
        api.patch(f"/projects/{project['id']}", json={"cache": None, "cors_origins": None})
    )
    assert cleared["cache"] is None and cleared["cors_origins"] == []


def test_a_project_without_policies_shows_defaults(api: httpx.Client) -> None:
    project = new_project(api, unique("plain"))
    assert project["guards"] == {}
    assert project["cors_origins"] == []
    assert project["cache"] is None
    assert project["models"] is None


def test_key_guards_round_trip(api: httpx.Client) -> None:
    key = new_key(api, name=unique("guarded"), guards={"pii": {"action": "block"}})
    assert key["guards"] == {"pii": {"action": "block"}}
    assert ok(api.get(f"/keys/{key['id']}"))["guards"] == {"pii": {"action": "block"}}
    updated = ok(api.patch(f"/keys/{key['id']}", json={"guards": {"secrets": {"action": "flag"}}}))
    assert updated["guards"] == {"secrets": {"action": "flag"}}
    assert ok(api.patch(f"/keys/{key['id']}", json={"guards": None}))["guards"] == {}
    plain = new_key(api, name=unique("plain"))
    assert plain["guards"] == {}


def test_policy_changes_are_audited(api: httpx.Client) -> None:
    project = new_project(api, unique("audit"), cors_origins=["https://a.example"])
    ok(api.patch(f"/projects/{project['id']}", json={"cache": {"enabled": True, "ttl": 60}}))
    entries = ok(api.get("/audit", params={"target": project["id"]}))
    details = {entry["action"]: entry["details"] for entry in entries}
    assert details["project.created"]["cors_origins"] == ["https://a.example"]
    assert details["project.updated"] == {"cache": {"enabled": True, "ttl": 60}}

    key = new_key(api, name=unique("audit"), guards={"pii": {"action": "flag"}})
    (created,) = ok(api.get("/audit", params={"target": key["id"], "action": "key.created"}))
    assert created["details"]["guards"] == {"pii": {"action": "flag"}}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"guards": {"pii": {"action": "drop"}}}, "guards.pii.action", "block, redact, flag"),
        ({"guards": {"pii": {}}}, "guards.pii.action", "block, redact, flag"),
        ({"guards": {"pii": "block"}}, "guards.pii", "an object"),
        ({"guards": {"PII": {"action": "block"}}}, "guards.PII", "lowercase"),
        ({"guards": {"9x": {"action": "block"}}}, "guards.9x", "lowercase"),
        ({"guards": {"a" * 41: {"action": "block"}}}, "guards." + "a" * 41, "39"),
        ({"guards": {"limits": {"action": "redact"}}}, "guards.limits.action", "whole requests"),
        (
            {"guards": {"pii": {"action": "redact", "deep": [[[[["x"]]]]]}}},
            "guards.pii.deep.0.0.0.0",
            "nest",
        ),
        ({"guards": {"pii": {"action": "flag", "n": 2**60}}}, "guards.pii.n", "integers"),
        ({"guards": {f"g{i}": {"action": "off"} for i in range(33)}}, "guards", "at most 32"),
        (
            {"guards": {f"g{i}": {"action": "flag", "x": "y" * 1000} for i in range(9)}},
            "guards",
            "bytes",
        ),
        ({"guards": []}, "guards", "dictionary"),
        ({"cors_origins": ["https://app.example.com/"]}, "cors_origins.0", "no path"),
        ({"cors_origins": ["https://ok.example", "*.example.com"]}, "cors_origins.1", "wildcard"),
        ({"cors_origins": ["https://*.example.com"]}, "cors_origins.0", "wildcard"),
        ({"cors_origins": ["ftp://example.com"]}, "cors_origins.0", "http(s)"),
        ({"cors_origins": ["https://u:p@example.com"]}, "cors_origins.0", "user"),
        ({"cors_origins": ["https://example.com?x=1"]}, "cors_origins.0", "query"),
        ({"cors_origins": ["https://example.com:0"]}, "cors_origins.0", "host[:port]"),
        ({"cors_origins": ["https://example.com:70000"]}, "cors_origins.0", "host[:port]"),
        ({"cors_origins": ["https://-bad-.com"]}, "cors_origins.0", "host[:port]"),
        ({"cors_origins": ["https://999.1.1.1"]}, "cors_origins.0", "host[:port]"),
        ({"cors_origins": ["*", "https://a.example"]}, "cors_origins.0", "alone"),
        ({"cors_origins": ["https://a.example"] * 65}, "cors_origins", "65"),
        ({"cors_origins": "https://a.example"}, "cors_origins", "list"),
        ({"cache": {"enabled": True, "ttl": 0}}, "cache.ttl", "1"),
        ({"cache": {"enabled": True, "ttl": 86401}}, "cache.ttl", "86400"),
        ({"cache": {"enabled": True, "ttl": "60"}}, "cache.ttl", "integer"),
        ({"cache": {"ttl": 60}}, "cache.enabled", "required"),
        ({"cache": {"enabled": "yes"}}, "cache.enabled", "boolean"),
        ({"cache": {"enabled": True, "size": 5}}, "cache.size", "not permitted"),
    ],
)
def test_bad_project_policies_are_a_4xx_naming_the_field(
    api: httpx.Client, body: dict[str, Any], param: str, fragment: str
) -> None:
    for response in (
        api.post("/projects", json={"name": unique("bad"), **body}),
        api.patch("/projects/default", json=body),
    ):
        error = management_error(response, (400, 422))
        assert error["param"] == param, error
        assert fragment in error["message"], error


def test_bad_key_guards_are_a_4xx_naming_the_field(api: httpx.Client) -> None:
    error = management_error(
        api.post("/keys", json={"name": "k", "guards": {"pii": {"action": "maybe"}}}), 422
    )
    assert error["param"] == "guards.pii.action"
    key = new_key(api, name=unique("k"))
    error = management_error(
        api.patch(f"/keys/{key['id']}", json={"guards": {"Bad": {"action": "off"}}}), 422
    )
    assert error["param"] == "guards.Bad"
    # Keys have no project-only policies.
    error = management_error(
        api.post("/keys", json={"name": "k", "cors_origins": ["https://a.example"]}), 422
    )
    assert error["param"] == "cors_origins"


# --------------------------------------------------------------------------- the hot path


async def test_key_entries_carry_the_policies(gw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(
        api,
        unique("hot"),
        guards={"pii": {"action": "redact", "kinds": ["email"]}, "secrets": {"action": "flag"}},
        cors_origins=["https://app.example.com"],
        cache={"enabled": True, "ttl": 30},
        models=["gpt-*"],
    )
    key = new_key(
        api,
        name=unique("hot"),
        project=project["name"],
        guards={"secrets": {"action": "block"}, "injection": {"action": "off"}},
    )
    plain = new_key(api, name=unique("plain"))

    settings = load_settings(gw.config)
    db = Database(settings.database_path_url)
    directory = KeyDirectory(db, ServerKeys.from_settings(settings), MASTER_KEY)
    try:
        epochs = await directory.epochs()
        assert epochs.keys >= 0 and epochs.switches >= 0
        entry = (await directory.authenticate({"x-api-key": key["key"]}, epochs)).key
        bare = (await directory.authenticate({"x-api-key": plain["key"]})).key
    finally:
        await db.aclose()
    assert entry is not None and bare is not None
    policy = entry.project_policy
    assert policy.guards["pii"] == GuardSetting("redact", {"kinds": ["email"]})
    assert policy.cors_origins == frozenset({"https://app.example.com"})
    assert policy.allows_origin("https://app.example.com")
    assert not policy.allows_origin("https://evil.example.com")
    assert policy.cache == CachePolicy(enabled=True, ttl=30)
    assert policy.models == ("gpt-*",)
    assert dict(entry.key_guards) == {
        "secrets": GuardSetting("block", {}),
        "injection": GuardSetting("off", {}),
    }
    # The key's settings replace the project's guard by guard.
    assert dict(entry.guards) == {
        "pii": GuardSetting("redact", {"kinds": ["email"]}),
        "secrets": GuardSetting("block", {}),
        "injection": GuardSetting("off", {}),
    }
    assert entry.allows("gpt-mini") and not entry.allows("claude-small")
    assert entry.refused_by("claude-small") == "project"

    assert dict(bare.guards) == {} and bare.project_policy.cache is None
    assert not bare.project_policy.allows_origin("https://app.example.com")


def test_cli_sets_project_policies(gw: ServedGateway, api: httpx.Client) -> None:
    name = unique("cli-policy")
    connect = ("--url", gw.url, "--master-key", MASTER_KEY)
    done = run_cli(
        "projects",
        "create",
        name,
        "--models",
        "gpt-*,claude-small",
        "--guard",
        "pii=redact",
        "--guards",
        '{"secrets": {"action": "flag", "min_entropy": 3.5}}',
        "--cors-origin",
        "https://app.example.com",
        "--cors-origin",
        "http://localhost:3000",
        "--cache-ttl",
        "90",
        "--json",
        *connect,
    )
    assert done.returncode == 0, done.stderr
    shown = ok(api.get(f"/projects/{name}"))
    assert shown["models"] == ["gpt-*", "claude-small"]
    assert shown["guards"] == {
        "secrets": {"action": "flag", "min_entropy": 3.5},
        "pii": {"action": "redact"},
    }
    assert shown["cors_origins"] == ["https://app.example.com", "http://localhost:3000"]
    assert shown["cache"] == {"enabled": True, "ttl": 90}

    done = run_cli("projects", "update", name, "--no-cache", *connect)
    assert done.returncode == 0, done.stderr
    assert ok(api.get(f"/projects/{name}"))["cache"] == {"enabled": False, "ttl": None}

    done = run_cli("keys", "create", "--name", "g", "--guard", "pii=block", "--json", *connect)
    assert done.returncode == 0, done.stderr
    done = run_cli("projects", "update", name, "--guard", "pii=scrub", *connect)
    assert done.returncode == 1 and "guards.pii.action" in done.stderr, done.stderr
    done = run_cli("projects", "update", name, "--guards", "[1]", *connect)
    assert done.returncode == 2 and "JSON object" in done.stderr, done.stderr
