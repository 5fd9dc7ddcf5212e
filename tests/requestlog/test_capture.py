"""Capture of prompt and response bodies: off by default, on per project through
``PATCH /api/v1/projects/{id}`` (validated, bounded, audited), cut to the project's
size, secrets redacted before anything is stored; the response is what the client got."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from requestlog_support import admin, chat, message, new_key, new_project, ok
from typer.testing import CliRunner

from fake_upstream import TEXT, FakeUpstream
from harness import MASTER_KEY, GatewayServer
from tollway.capture import Capture
from tollway.cli.main import app as cli_app

# A credential of the OpenAI shape (mixed case and digits, as the secrets guard wants).
LEAKED = "sk-proj-Q7dXw2LmN9pR4sT6vY8zA1bC3eF5gH7jK9"


def capturing(api: httpx.Client, **capture: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A project that captures bodies, and a key in it."""
    project = new_project(api)
    patched = ok(
        api.patch(f"/projects/{project['id']}", json={"capture": {"enabled": True, **capture}})
    )
    return patched, new_key(api, project=project["name"])


def bodies(api: httpx.Client, request_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = ok(api.get(f"/requests/{request_id}"))["bodies"]
    return found


def test_off_by_default(rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client) -> None:
    project = new_project(api)
    assert project["capture"] is None
    key = new_key(api, project=project["name"])
    response = chat(rlgw.url, key["key"], content=f"my key is {LEAKED}")
    assert bodies(api, response.headers["x-request-id"]) is None


def test_captured_with_secrets_redacted(
    rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client
) -> None:
    project, key = capturing(api)
    assert project["capture"] == {"enabled": True, "max_bytes": 32768}
    response = chat(rlgw.url, key["key"], content=f"please use {LEAKED} for the call")
    assert response.status_code == 200
    kept = bodies(api, response.headers["x-request-id"])
    assert kept is not None
    assert LEAKED not in kept["request"]
    assert "[REDACTED:openai_key]" in kept["request"]
    assert json.loads(kept["request"])["messages"][0]["content"].startswith("please use [REDACTED")
    # The answer as the client received it, byte for byte.
    assert kept["response"] == response.text
    assert kept["response_bytes"] == len(response.content)
    assert kept["request_bytes"] == len(response.request.content)


def test_a_stream_is_kept_as_sent(
    rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client
) -> None:
    _, key = capturing(api)
    response = message(rlgw.url, key["key"], stream=True)
    assert response.status_code == 200
    kept = bodies(api, response.headers["x-request-id"])
    assert kept is not None
    assert kept["response"] == response.text
    assert "event: message_stop" in kept["response"]
    assert TEXT.split()[0] in kept["response"]


def test_bodies_are_cut_to_the_project_size(
    rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client
) -> None:
    _, key = capturing(api, max_bytes=1024)
    long_prompt = "lorem ipsum " * 400 + LEAKED + " tail"
    response = chat(rlgw.url, key["key"], content=long_prompt)
    kept = bodies(api, response.headers["x-request-id"])
    assert kept is not None
    assert len(kept["request"].encode()) <= 1024
    assert kept["request_bytes"] == len(response.request.content) > 1024
    assert LEAKED not in kept["request"]


def test_a_secret_the_cut_goes_through_is_not_kept() -> None:
    capture = Capture()
    data = ("x " * 500 + LEAKED + " and more").encode()
    cut_inside = data.index(LEAKED.encode()) + 12 - 1  # the cut falls inside the secret
    kept = capture.clean(data, len(data), cut_inside)
    assert LEAKED[:12] not in kept
    assert "sk-proj" not in kept
    assert len(kept.encode()) <= cut_inside


def test_capture_can_be_turned_off(
    rlgw: GatewayServer, fake_server: FakeUpstream, api: httpx.Client
) -> None:
    project, key = capturing(api)
    off = ok(api.patch(f"/projects/{project['id']}", json={"capture": {"enabled": False}}))
    assert off["capture"] == {"enabled": False, "max_bytes": 32768}
    response = chat(rlgw.url, key["key"])
    assert bodies(api, response.headers["x-request-id"]) is None
    cleared = ok(api.patch(f"/projects/{project['id']}", json={"capture": None}))
    assert cleared["capture"] is None


def test_changes_are_audited(api: httpx.Client) -> None:
    project, _ = capturing(api, max_bytes=4096)
    entries = ok(api.get("/audit", params={"target": project["id"], "action": "project.updated"}))
    assert entries[0]["details"]["capture"] == {"enabled": True, "max_bytes": 4096}


@pytest.mark.parametrize(
    ("capture", "param"),
    [
        ({"enabled": "yes"}, "capture.enabled"),
        ({}, "capture.enabled"),
        ({"enabled": True, "max_bytes": 10}, "capture.max_bytes"),
        ({"enabled": True, "max_bytes": 2**40}, "capture.max_bytes"),
        ({"enabled": True, "max_bytes": "4096"}, "capture.max_bytes"),
        ({"enabled": True, "max_bytes": True}, "capture.max_bytes"),
        ({"enabled": True, "keep": "all"}, "capture.keep"),
        ("on", "capture"),
    ],
    ids=json.dumps,
)
def test_bad_capture_settings_name_the_field(capture: Any, param: str, api: httpx.Client) -> None:
    project = new_project(api)
    response = api.patch(f"/projects/{project['id']}", json={"capture": capture})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["param"] == param
    assert ok(api.get(f"/projects/{project['id']}"))["capture"] is None


def test_cli_turns_capture_on(rlgw: GatewayServer) -> None:
    with admin(rlgw.url) as api:
        project = new_project(api)
    result = CliRunner().invoke(
        cli_app,
        [
            "projects",
            "update",
            project["name"],
            "--capture-bytes",
            "2048",
            "--json",
            "--url",
            rlgw.url,
            "--master-key",
            MASTER_KEY,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["capture"] == {"enabled": True, "max_bytes": 2048}
