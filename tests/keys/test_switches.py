"""Kill switches: ``/api/v1/switches``, roles, audit entries, the switches epoch, the CLI,
and two processes seeing a change on their next read.

The gateway runs two workers on SQLite. "Every process sees it at once" is checked
twice: on the proxy itself (calls over fresh connections until both workers answered,
each one refusing with 503 in the caller's dialect), and in two separate processes
(``switch_probe.py``) each holding a warm ``SwitchBoard`` that reads the epochs once per
check, as every request does.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keys_support import (
    CLAUDE,
    CLAUDE_BIG,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_BIG,
    GPT_UPSTREAM,
    MASTER_KEY,
    PYTHON,
    ServedGateway,
    created,
    launch,
    management_error,
    new_key,
    ok,
    run_cli,
    unique,
)

from fake_upstream import FakeUpstream
from served import clean_env

PROBE = str(Path(__file__).with_name("switch_probe.py"))
PROVIDERS = {"oa": True, "an": True}
DEPLOYMENTS = {
    "oa/gpt-mini-upstream": True,
    "oa/gpt-big": True,
    "an/claude-small-upstream": True,
    "an/claude-big": True,
    "an/claude-*": True,
}
ALL_ON = {"proxy": True, "providers": PROVIDERS, "deployments": DEPLOYMENTS}


# The standard test models plus a glob model, whose deployment keeps its glob.
MODELS = [
    {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
    {"name": GPT_BIG, "provider": "oa"},
    {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
    {"name": CLAUDE_BIG, "provider": "an"},
    {"name": "claude-*", "provider": "an"},
]


@pytest.fixture(scope="module")
def sgw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """A two-worker gateway of its own: switches are global, so no other module's."""
    gateway = launch(tmp_path_factory.mktemp("switches"), upstream_server, workers=2, models=MODELS)
    yield gateway
    gateway.stop()


@pytest.fixture
def api(sgw: ServedGateway) -> Iterator[httpx.Client]:
    """The gateway's management API as the master key, every switch back on after."""
    with sgw.admin() as client:
        yield client
        ok(client.patch("/switches", json=ALL_ON))


def epochs(gateway: ServedGateway) -> dict[str, int]:
    """The epochs table, read directly."""
    conn = sqlite3.connect(gateway.db_path)
    try:
        return dict(conn.execute("SELECT name, value FROM epochs").fetchall())
    finally:
        conn.close()


def switch_entries(client: httpx.Client, after: int) -> list[dict[str, Any]]:
    """``switch.changed`` audit entries after sequence number ``after``, oldest first."""
    rows = ok(client.get("/audit", params={"action": "switch.changed", "limit": 1000}))
    return sorted((row for row in rows if row["seq"] > after), key=lambda row: row["seq"])


def last_seq(client: httpx.Client) -> int:
    """The newest audit sequence number."""
    rows = ok(client.get("/audit", params={"limit": 1}))
    return int(rows[0]["seq"]) if rows else 0


# --------------------------------------------------------------------------- the API


def test_every_configured_switch_is_listed_and_on(api: httpx.Client) -> None:
    assert ok(api.get("/switches")) == ALL_ON


def test_a_partial_patch_changes_only_what_it_names(sgw: ServedGateway, api: httpx.Client) -> None:
    before = epochs(sgw)
    answer = ok(api.patch("/switches", json={"providers": {"oa": False}}))
    assert answer == {**ALL_ON, "providers": {"oa": False, "an": True}}
    assert ok(api.get("/switches")) == answer
    # The switches epoch moved in the same transaction; the keys epoch did not.
    after = epochs(sgw)
    assert after["switches"] == before["switches"] + 1
    assert after["keys"] == before["keys"]

    answer = ok(
        api.patch("/switches", json={"proxy": False, "deployments": {"an/claude-*": False}})
    )
    assert answer["proxy"] is False
    assert answer["providers"] == {"oa": False, "an": True}
    assert answer["deployments"] == {**DEPLOYMENTS, "an/claude-*": False}


def test_both_workers_answer_with_the_new_state(sgw: ServedGateway, api: httpx.Client) -> None:
    ok(api.patch("/switches", json={"deployments": {"oa/gpt-big": False}}))
    # Fresh connections, so the two workers take turns answering.
    for _ in range(10):
        with httpx.Client(base_url=sgw.url + "/api/v1", timeout=10) as fresh:
            shown = ok(fresh.get("/switches", headers={"authorization": f"Bearer {MASTER_KEY}"}))
            assert shown["deployments"]["oa/gpt-big"] is False


def test_each_change_is_one_audit_entry_with_before_and_after(api: httpx.Client) -> None:
    start = last_seq(api)
    ok(api.patch("/switches", json={"proxy": False, "providers": {"an": False, "oa": True}}))
    entries = switch_entries(api, start)
    # "oa" was already on: nothing changed, nothing recorded.
    assert [(e["target_id"], e["details"]) for e in entries] == [
        ("proxy", {"switch": "proxy", "before": True, "after": False}),
        ("provider:an", {"switch": "provider:an", "before": True, "after": False}),
    ]
    assert {e["actor"] for e in entries} == {"master"}
    assert {e["target_type"] for e in entries} == {"switch"}

    ok(api.patch("/switches", json={"proxy": True}))
    again = switch_entries(api, entries[-1]["seq"])
    assert [(e["target_id"], e["details"]["before"], e["details"]["after"]) for e in again] == [
        ("proxy", False, True)
    ]
    assert ok(api.get("/audit/verify"))["ok"] is True


def test_an_admin_key_is_the_actor(sgw: ServedGateway, api: httpx.Client) -> None:
    operator = created(api.post("/admin-keys", json={"name": unique("ops"), "role": "operator"}))
    start = last_seq(api)
    with sgw.admin(operator["key"]) as client:
        ok(client.patch("/switches", json={"deployments": {"an/claude-big": False}}))
    (entry,) = switch_entries(api, start)
    assert entry["actor"] == f"admin_key:{operator['id']}"
    assert entry["details"] == {
        "switch": "deployment:an/claude-big",
        "before": True,
        "after": False,
    }


def test_viewers_read_but_do_not_switch(sgw: ServedGateway, api: httpx.Client) -> None:
    viewer = created(api.post("/admin-keys", json={"name": unique("viewer"), "role": "viewer"}))
    with sgw.admin(viewer["key"]) as client:
        assert ok(client.get("/switches")) == ALL_ON
        error = management_error(client.patch("/switches", json={"proxy": False}), 403)
        assert "operator" in error["message"]
    assert ok(api.get("/switches"))["proxy"] is True
    with httpx.Client(base_url=sgw.url + "/api/v1", timeout=10) as anonymous:
        management_error(anonymous.get("/switches"), 401)


def test_unknown_names_are_a_400_naming_them(sgw: ServedGateway, api: httpx.Client) -> None:
    before = epochs(sgw)["switches"]
    error = management_error(
        api.patch("/switches", json={"proxy": False, "providers": {"nope": False, "oa": False}}),
        400,
    )
    assert "'nope'" in error["message"] and error["param"] == "providers.nope"
    assert "oa" in error["message"]  # the configured ones are listed

    error = management_error(
        api.patch(
            "/switches",
            json={"deployments": {"oa/gpt-mini": False, "oa/missing": False}},
        ),
        400,
    )
    assert "'oa/gpt-mini'" in error["message"] and "'oa/missing'" in error["message"]
    assert error["param"] == "deployments.oa/gpt-mini"
    # Nothing was applied, not even the known names of a refused request.
    assert ok(api.get("/switches")) == ALL_ON
    assert epochs(sgw)["switches"] == before


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"proxy": None}, "proxy"),
        ({"proxy": "off"}, "proxy"),
        ({"proxy": 0}, "proxy"),
        ({"providers": {"oa": "false"}}, "providers.oa"),
        ({"providers": None}, "providers"),
        ({"deployments": ["oa/gpt-big"]}, "deployments"),
        ({"proxies": False}, "proxies"),
    ],
)
def test_malformed_patches_are_a_4xx_naming_the_field(
    api: httpx.Client, body: dict[str, Any], param: str
) -> None:
    error = management_error(api.patch("/switches", json=body), (400, 422))
    assert error["param"] == param, error


def test_an_empty_patch_changes_nothing(sgw: ServedGateway, api: httpx.Client) -> None:
    before = epochs(sgw)["switches"]
    assert ok(api.patch("/switches", json={})) == ALL_ON
    assert epochs(sgw)["switches"] == before


# --------------------------------------------------------------------------- processes


class Probe:
    """One ``switch_probe.py`` process: a warm SwitchBoard in a process of its own."""

    def __init__(self, gateway: ServedGateway) -> None:
        url = f"sqlite:///{gateway.db_path}"
        self.process = subprocess.Popen(
            [PYTHON, PROBE, url, "oa", "an", "claude-3-haiku"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )

    def check(self) -> dict[str, Any]:
        """One check: epochs read, board refreshed if they moved, its verdicts."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("check\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the probe exited"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        """Close its stdin and wait for it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture
def probes(sgw: ServedGateway) -> Iterator[list[Probe]]:
    """Two probe processes on the gateway's database."""
    started = [Probe(sgw), Probe(sgw)]
    yield started
    for probe in started:
        probe.close()


def test_two_processes_see_a_change_on_their_next_read(
    api: httpx.Client, probes: list[Probe]
) -> None:
    for probe in probes:
        warm = probe.check()
        assert warm["proxy"] and warm["provider"] and warm["deployment"], warm
        steady = probe.check()
        assert steady["reloaded"] is False, "an unchanged epoch must not reload the switches"

    ok(api.patch("/switches", json={"proxy": False}))
    for probe in probes:  # the very next read, no waiting
        seen = probe.check()
        assert seen["reloaded"] is True and seen["proxy"] is False, seen
        assert seen["off"] == ["proxy"]

    # A glob deployment's switch covers every model its pattern serves.
    ok(api.patch("/switches", json={"proxy": True, "deployments": {"an/claude-*": False}}))
    for probe in probes:
        seen = probe.check()
        assert seen["proxy"] is True and seen["deployment"] is False, seen
        assert seen["provider"] is True

    ok(api.patch("/switches", json={"providers": {"oa": False}}))
    for probe in probes:
        seen = probe.check()
        assert seen["provider"] is False, seen
        assert seen["off"] == ["deployment:an/claude-*", "provider:oa"]

    ok(api.patch("/switches", json=ALL_ON))
    for probe in probes:
        seen = probe.check()
        assert seen["proxy"] and seen["provider"] and seen["deployment"], seen
        assert seen["off"] == []


# --------------------------------------------------------------------------- the proxy


def _proxy(gateway: ServedGateway, key: str, model: str, dialect: str) -> httpx.Response:
    """One call on a fresh connection, in ``dialect``."""
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        if dialect == "anthropic":
            return client.post(
                "/v1/messages",
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                json={
                    "model": model,
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        return client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )


def test_proxy_switch_refuses_on_every_worker(sgw: ServedGateway, api: httpx.Client) -> None:
    from test_keys_workers import Caller, _assert_both_workers

    key = new_key(api, name=unique("switch"))["key"]
    caller = Caller(sgw)
    assert len(caller.pids) >= 2
    ok(api.patch("/switches", json={"proxy": False}))
    statuses, workers = caller.until_both(key, minimum=20, each=5)
    assert statuses == Counter({503: sum(statuses.values())})
    _assert_both_workers(workers)
    refused = _proxy(sgw, key, GPT, "openai")
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "switched_off"
    assert "switched off by an operator" in refused.json()["error"]["message"]
    in_dialect = _proxy(sgw, key, CLAUDE, "anthropic")
    assert in_dialect.status_code == 503 and in_dialect.json()["type"] == "error"

    ok(api.patch("/switches", json={"proxy": True}))
    statuses, workers = caller.until_both(key, minimum=10, each=3)
    assert set(statuses) == {200}


def test_provider_and_deployment_switches_steer_the_proxy(
    sgw: ServedGateway, api: httpx.Client
) -> None:
    key = new_key(api, name=unique("steer"))["key"]
    ok(api.patch("/switches", json={"providers": {"oa": False}}))
    for _ in range(6):  # both workers, fresh connections
        off = _proxy(sgw, key, GPT, "openai")
        assert off.status_code == 503
        error = off.json()["error"]
        assert error["code"] == "switched_off" and "oa/" in error["message"]
        assert _proxy(sgw, key, CLAUDE, "anthropic").status_code == 200
    ok(
        api.patch(
            "/switches", json={"providers": {"oa": True}, "deployments": {"an/claude-*": False}}
        )
    )
    for _ in range(6):
        # The glob's switch covers every deployment at 'an' whose model it matches.
        assert _proxy(sgw, key, "claude-anything", "anthropic").status_code == 503
        assert _proxy(sgw, key, CLAUDE, "anthropic").status_code == 503
        assert _proxy(sgw, key, GPT, "openai").status_code == 200
    ok(api.patch("/switches", json={"deployments": {"an/claude-*": True, "oa/gpt-big": False}}))
    assert _proxy(sgw, key, CLAUDE, "anthropic").status_code == 200
    assert _proxy(sgw, key, GPT_BIG, "openai").status_code == 503
    assert _proxy(sgw, key, GPT, "openai").status_code == 200


# --------------------------------------------------------------------------- CLI


def tw(gateway: ServedGateway, *args: str) -> Any:
    """``tollway switches <args> --url ... --master-key ...``."""
    return run_cli("switches", *args, "--url", gateway.url, "--master-key", MASTER_KEY)


def test_cli_show_and_set(sgw: ServedGateway, api: httpx.Client) -> None:
    shown = tw(sgw, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == ALL_ON

    done = tw(sgw, "set", "proxy", "off")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "proxy: off"
    done = tw(sgw, "set", "provider", "an", "off")
    assert done.returncode == 0 and done.stdout.strip() == "provider an: off", done.stderr
    done = tw(sgw, "set", "deployment", "oa/gpt-big", "off", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "proxy": False,
        "providers": {"oa": True, "an": False},
        "deployments": {**DEPLOYMENTS, "oa/gpt-big": False},
    }
    assert ok(api.get("/switches"))["deployments"]["oa/gpt-big"] is False

    table = tw(sgw, "show")
    assert table.returncode == 0, table.stderr
    lines = {" ".join(line.replace("│", " ").split()) for line in table.stdout.splitlines()}
    assert "proxy off" in lines
    assert "provider an off" in lines and "provider oa on" in lines
    assert "deployment oa/gpt-big off" in lines

    done = tw(sgw, "set", "deployment", "oa/gpt-big", "on")
    assert done.returncode == 0 and done.stdout.strip() == "deployment oa/gpt-big: on"
    entries = switch_entries(api, 0)
    assert entries[-1]["details"] == {
        "switch": "deployment:oa/gpt-big",
        "before": False,
        "after": True,
    }


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("set", "proxy", "maybe"), 2, "'on' or 'off'"),
        (("set", "proxy"), 2, "proxy off"),
        (("set", "provider", "oa"), 2, "provider NAME off"),
        (("set", "deployment", "gpt-big", "off"), 2, "PROVIDER/MODEL"),
        (("set", "switch", "x", "off"), 2, "proxy off"),
        (("set", "provider", "nope", "off"), 1, "'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    sgw: ServedGateway, api: httpx.Client, args: tuple[str, ...], code: int, fragment: str
) -> None:
    done = tw(sgw, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert ok(api.get("/switches")) == ALL_ON


def test_cli_help_needs_no_gateway() -> None:
    done = run_cli("switches", "set", "--help")
    assert done.returncode == 0, done.stderr
    assert "proxy off" in done.stdout
