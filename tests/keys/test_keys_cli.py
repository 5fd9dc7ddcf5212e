"""The ``tollway`` CLI against a running gateway, as a subprocess."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from keys_support import (
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    PYTHON,
    ServedGateway,
    chat,
    message,
    run_cli,
    run_clis,
    run_each,
    unique,
    write_config,
)

from fake_upstream import TEXT, FakeUpstream
from served import TOLLWAY, clean_env, free_port


def tw(gw: ServedGateway, group: str, *args: str) -> Any:
    """``tollway <group> --url ... --master-key ... <args>``."""
    return run_cli(group, "--url", gw.url, "--master-key", MASTER_KEY, *args)


def tws(gw: ServedGateway, *commands: tuple[str, ...]) -> list[Any]:
    """Several independent ``tw`` commands, run side by side."""
    connect = ("--url", gw.url, "--master-key", MASTER_KEY)
    return run_clis(*((group, *connect, *args) for group, *args in commands))


def as_json(done: Any) -> Any:
    """The parsed stdout of a successful ``--json`` command."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line_error(done: Any, *fragments: str) -> str:
    """A failure: non-zero exit, exactly one non-empty line on stderr."""
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_keys_commands(gw: ServedGateway) -> None:
    run = unique("cli")
    main, budget = tws(
        gw,
        (
            "keys",
            "create",
            "--name",
            "cli key",
            "--ttl",
            "1h",
            "--models",
            f"{GPT},claude-*",
            "--rpm",
            "10",
            "--tpm",
            "1000",
            "--max-parallel",
            "2",
            "--max-requests",
            "50",
            "--meta",
            "org=acme",
            "--meta",
            f"run={run}",
            "--json",
        ),
        ("keys", "create", "--name", "b", "--budget", "5", "--budget-period", "day"),
    )
    made = as_json(main)
    key, key_id = made["key"], made["id"]
    assert key.startswith("sk-tw-")
    assert made["models"] == [GPT, "claude-*"]
    assert made["metadata"] == {"org": "acme", "run": run}
    assert (made["rpm"], made["tpm"], made["max_parallel"], made["max_requests"]) == (
        10,
        1000,
        2,
        50,
    )
    assert made["expires_at"] is not None
    assert budget.returncode == 0, budget.stderr
    assert "max_budget_usd  5" in budget.stdout and "budget_period   day" in budget.stdout
    assert chat(gw, key).model == GPT_UPSTREAM

    listed, shown = tws(
        gw,
        ("keys", "list", "--meta", f"run={run}", "--json"),
        ("keys", "show", key_id, "--json"),
    )
    rows = as_json(listed)
    assert [row["id"] for row in rows] == [key_id]
    assert key not in listed.stdout
    assert as_json(shown)["name"] == "cli key"
    assert key not in shown.stdout

    off = as_json(tw(gw, "keys", "update", key_id, "--models", CLAUDE, "--deactivate", "--json"))
    assert off["status"] == "inactive" and off["models"] == [CLAUDE]
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    on = as_json(tw(gw, "keys", "update", key_id, "--activate", "--name", "renamed", "--json"))
    assert on["status"] == "active" and on["name"] == "renamed"
    assert message(gw, key, CLAUDE).model == CLAUDE_UPSTREAM
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, key, GPT)

    revoked = as_json(tw(gw, "keys", "revoke", key_id, "--json"))
    assert revoked["status"] == "revoked"
    with pytest.raises(anthropic.AuthenticationError):
        message(gw, key, CLAUDE)
    inactive, active = tws(
        gw,
        ("keys", "list", "--inactive", "--meta", f"run={run}", "--json"),
        ("keys", "list", "--active", "--meta", f"run={run}", "--json"),
    )
    assert [row["id"] for row in as_json(inactive)] == [key_id]
    assert as_json(active) == []


def test_human_output(gw: ServedGateway) -> None:
    name = unique("people")
    done = tw(gw, "keys", "create", "--name", name)
    assert done.returncode == 0, done.stderr
    assert "Store the key now" in done.stderr
    fields = {}
    for line in done.stdout.splitlines():
        field, _, value = line.partition(" ")
        fields[field] = value.strip()
    assert fields["name"] == name
    assert fields["key"].startswith("sk-tw-")
    table, revoked = tws(gw, ("keys", "list"), ("keys", "revoke", fields["id"]))
    assert table.returncode == 0
    assert fields["id"] in table.stdout
    assert fields["key"] not in table.stdout
    assert revoked.returncode == 0
    assert revoked.stdout.strip() == f"revoked {fields['id']} ({name})"


def test_projects_commands(gw: ServedGateway, upstream: FakeUpstream) -> None:
    name = unique("cli-project")
    credential = "sk-proj-CLI-plaintext-5511"
    made = tw(gw, "projects", "create", name, "--credential", f"oa={credential}", "--rpm", "9")
    assert made.returncode == 0, made.stderr
    assert credential not in made.stdout
    shown, listed = tws(gw, ("projects", "show", name, "--json"), ("projects", "list", "--json"))
    project = as_json(shown)
    assert project["credential_providers"] == ["oa"] and project["rpm"] == 9
    assert name in {row["name"] for row in as_json(listed)}
    assert credential not in listed.stdout

    key = as_json(tw(gw, "keys", "create", "--name", "p", "--project", name, "--json"))["key"]
    chat(gw, key)
    assert upstream.last().headers["authorization"] == f"Bearer {credential}"

    off = as_json(tw(gw, "projects", "update", name, "--deactivate", "--json"))
    assert off["active"] is False
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    on = as_json(tw(gw, "projects", "update", name, "--activate", "--tpm", "99", "--json"))
    assert on["active"] is True and on["tpm"] == 99
    chat(gw, key)

    result = as_json(tw(gw, "projects", "revoke-keys", name, "--json"))
    assert result == {"project_id": project["id"], "revoked": 1}
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    human = tw(gw, "projects", "revoke-keys", name)
    assert human.stdout.strip() == f"revoked 0 keys of {project['id']}"


def test_url_and_key_from_the_environment(gw: ServedGateway) -> None:
    env = clean_env(TOLLWAY_URL=gw.url, TOLLWAY_MASTER_KEY=MASTER_KEY)
    name = unique("env")
    made = json.loads(run_cli("keys", "create", "--name", name, "--json", env=env).stdout)
    shown, verified = run_clis(
        ("keys", "show", made["id"], "--json"), ("audit", "verify", "--json"), env=env
    )
    assert json.loads(shown.stdout)["name"] == name
    assert json.loads(verified.stdout)["ok"] is True


def test_connection_options_before_or_after_the_subcommand(
    gw: ServedGateway, tmp_path: Path
) -> None:
    url, key = ("--url", gw.url), ("--master-key", MASTER_KEY)
    data_dir = tmp_path / "generated"
    data_dir.mkdir()
    (data_dir / "master_key").write_text(MASTER_KEY + "\n", encoding="utf-8")
    good_env = clean_env(TOLLWAY_URL=gw.url, TOLLWAY_MASTER_KEY=MASTER_KEY)
    unreachable = f"http://127.0.0.1:{free_port()}"
    wrong_env = clean_env(TOLLWAY_URL=unreachable, TOLLWAY_MASTER_KEY="sk-wrong")
    # Every gateway command with the options after it; then each way of giving them.
    jobs: list[tuple[tuple[str, ...], dict[str, str] | None]] = [
        (("keys", "list", "--json", *url, *key), None),
        (("projects", "list", "--json", *url, *key), None),
        (("spend", "--group-by", "model", "--json", *url, *key), None),
        (("spend", "quarantine", "--json", *url, *key), None),
        (("audit", "list", "--json", *url, *key), None),
        (("audit", "verify", "--json", *url, *key), None),
        (("keys", *url, *key, "list", "--json"), None),
        (("keys", *url, "list", *key, "--json"), None),
        (("keys", "list", "--json"), good_env),
        (("keys", "list", "--json", *url, *key), wrong_env),  # options beat the environment
        (("keys", *url, "--master-key", "sk-wrong", "list", *key, "--json"), None),  # later wins
        (("spend", "quarantine", "--json", *url, "--data-dir", str(data_dir)), None),
        (("audit", "--data-dir", str(data_dir), "verify", "--json", *url), None),
    ]
    for (args, _), done in zip(jobs, run_each(jobs), strict=True):
        assert done.returncode == 0, (args, done.stderr)
        json.loads(done.stdout)


def test_usage_errors_are_one_line(gw: ServedGateway) -> None:
    one_line_error(tw(gw, "keys", "create", "--name", "x", "--rpm", "abc"), "--rpm")


ENV_SCRIPT = f"""
import json, os
import anthropic, openai
assert set(os.environ) >= {{"OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL",
                            "ANTHROPIC_API_KEY"}}
oai = openai.OpenAI(max_retries=0)
chat = oai.chat.completions.create(
    model={GPT!r}, messages=[{{"role": "user", "content": "hi"}}], max_tokens=5
)
claude = anthropic.Anthropic(max_retries=0)
reply = claude.messages.create(
    model={CLAUDE!r}, messages=[{{"role": "user", "content": "hi"}}], max_tokens=5
)
print(json.dumps({{"chat": chat.choices[0].message.content, "messages": reply.content[0].text}}))
"""


def test_env_block_is_enough_for_both_sdks(gw: ServedGateway, upstream: FakeUpstream) -> None:
    args = ["keys", "--url", gw.url, "--master-key", MASTER_KEY, "create", "--name", "sandbox"]
    args += ["--ttl", "15m", "--models", f"{GPT},{CLAUDE}", "--env"]
    command = " ".join(shlex.quote(part) for part in [TOLLWAY, *args])
    sourced = [
        "bash",
        "-c",
        f'source <({command}) && exec {shlex.quote(PYTHON)} -c "$SCRIPT"',
    ]
    with ThreadPoolExecutor(2) as pool:
        # One block to read, and one sourced by a shell that then runs both SDKs with
        # nothing but the environment it exported.
        printed = pool.submit(run_cli, *args)
        used = pool.submit(
            subprocess.run,
            sourced,
            capture_output=True,
            text=True,
            env=clean_env(SCRIPT=ENV_SCRIPT),
            timeout=60,
            check=False,
        )
        block, done = printed.result(), used.result()

    assert block.returncode == 0, block.stderr
    exports: dict[str, str] = {}
    for line in block.stdout.splitlines():
        if not line.strip():
            continue
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = shlex.split(value)[0]
    assert exports["OPENAI_BASE_URL"] == gw.url + "/v1"
    assert exports["ANTHROPIC_BASE_URL"] == gw.url
    assert exports["OPENAI_API_KEY"] == exports["ANTHROPIC_API_KEY"]
    key = exports["OPENAI_API_KEY"]
    assert key.startswith("sk-tw-") and not key.startswith("sk-tw-master")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"chat": TEXT, "messages": TEXT}
    # The gateway replaced the sandbox key with its own provider credentials upstream.
    assert len(upstream.requests) == 2
    for received in upstream.requests:
        assert "sk-tw-" not in json.dumps(received.headers)


def test_env_block_honours_base_url(gw: ServedGateway) -> None:
    done = tw(
        gw, "keys", "create", "--name", "sb", "--env", "--base-url", "http://gateway.internal:80/"
    )
    assert done.returncode == 0, done.stderr
    assert "export OPENAI_BASE_URL=http://gateway.internal:80/v1" in done.stdout
    assert "export ANTHROPIC_BASE_URL=http://gateway.internal:80\n" in done.stdout + "\n"


# --------------------------------------------------------------------------- migrate


def test_migrate_creates_a_fresh_sqlite_database(
    tmp_path: Path, upstream_server: FakeUpstream
) -> None:
    from tollway.store.migrate import head_revision

    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "cfg.yaml", data_dir, upstream_server)
    first = run_cli("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    head = head_revision()
    assert head and first.stdout.strip() == f"database at revision {head}"
    again = run_cli("migrate", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == first.stdout.strip()

    conn = sqlite3.connect(data_dir / "tollway.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        projects = conn.execute("SELECT id, name FROM projects").fetchall()
        (audit_rows,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    finally:
        conn.close()
    assert {"keys", "projects", "admin_keys", "audit_log", "audit_head", "epochs"} <= tables
    assert version == head
    assert projects == [("proj_default", "default")]
    assert audit_rows == 0


def test_migrate_failures_are_one_line(tmp_path: Path, upstream_server: FakeUpstream) -> None:
    unreachable = write_config(
        tmp_path / "unreachable.yaml",
        tmp_path / "d1",
        upstream_server,
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
    )
    bad_field = write_config(
        tmp_path / "bad-field.yaml", tmp_path / "d2", upstream_server, databse_url="sqlite://"
    )
    down, typo, missing = run_clis(
        ("migrate", "--config", str(unreachable)),
        ("migrate", "--config", str(bad_field)),
        ("migrate", "--config", str(tmp_path / "missing.yaml")),
    )
    one_line_error(down, "migration failed")
    one_line_error(typo, "databse_url")
    one_line_error(missing, "missing")


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_unsupported_database_url_is_a_one_line_config_error(
    tmp_path: Path, upstream_server: FakeUpstream, command: str
) -> None:
    config = write_config(
        tmp_path / "mysql.yaml",
        tmp_path / "data",
        upstream_server,
        database_url="mysql://nobody@127.0.0.1/none",
    )
    args = [command, "--config", str(config)]
    if command == "serve":
        args += ["--port", str(free_port())]
    one_line_error(run_cli(*args, timeout=30), "database_url")


def test_keys_create_with_an_absolute_expiry(gw: ServedGateway) -> None:
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    created = as_json(
        tw(
            gw,
            "keys",
            "create",
            "--name",
            unique("until"),
            "--expires-at",
            at.isoformat(),
            "--json",
        )
    )
    assert created["expires_at"] == at.isoformat().replace("+00:00", "Z")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    one_line_error(tw(gw, "keys", "create", "--name", "late", "--expires-at", past), "future")
    one_line_error(tw(gw, "keys", "create", "--name", "bad", "--expires-at", "soon"), "expires_at")
