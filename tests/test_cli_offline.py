"""The ``tollway`` console script with no gateway, no key and no config anywhere: every
``--help`` works, usage errors exit 2 and failures exit 1, each with one line that says
what to do next, and nothing is looked up before a command needs the API."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.main

from served import TOLLWAY, clean_env, free_port
from tollway.cli.main import app

# The groups whose commands talk to a running gateway.
GATEWAY_GROUPS = ("keys", "projects", "spend", "audit")
CONNECTION_OPTIONS = ("--url", "--master-key", "--data-dir")


def command_paths() -> list[tuple[str, ...]]:
    """Every group and command of the CLI, read from the app (so new ones are covered)."""
    paths: list[tuple[str, ...]] = [()]

    def walk(command: object, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append((*path, name))
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Path]:
    """A working directory with no ``.tollway`` and no ``tollway.yaml``."""
    yield tmp_path


def tollway(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script with no TOLLWAY_/OPENAI_/ANTHROPIC_ variables but ``env``."""
    return subprocess.run(
        [TOLLWAY, *args],
        cwd=cwd,
        env=clean_env(NO_COLOR="1", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def side_by_side(
    cwd: Path, commands: list[tuple[str, ...]], **env: str
) -> list[subprocess.CompletedProcess[str]]:
    """Independent invocations at once (each is a fresh interpreter)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: tollway(*args, cwd=cwd, **env), commands))


def one_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """A failure with exit ``code`` and exactly one line on stderr holding ``fragments``."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert done.stdout == ""
    return lines[0]


def test_the_app_has_the_commands_this_module_expects() -> None:
    paths = command_paths()
    assert ("keys", "create") in paths and ("spend", "quarantine") in paths
    assert {path[0] for path in paths if path} >= {*GATEWAY_GROUPS, "serve", "migrate"}


def test_help_needs_nothing(empty: Path) -> None:
    paths = command_paths()
    # Hostile leftovers must not matter either: --help never resolves the connection.
    env = {"TOLLWAY_URL": "not a url", "TOLLWAY_DATA_DIR": str(empty / "missing")}
    results = side_by_side(empty, [(*path, "--help") for path in paths], **env)
    for path, done in zip(paths, results, strict=True):
        assert done.returncode == 0, (path, done.stderr)
        assert done.stderr == "", (path, done.stderr)
        assert f"Usage: {' '.join(['tollway', *path])}" in done.stdout, (path, done.stdout)
        if path and path[0] in GATEWAY_GROUPS:
            for option in CONNECTION_OPTIONS:
                assert option in done.stdout, (path, option)
    assert list(empty.iterdir()) == []


def test_short_help_and_bare_groups(empty: Path) -> None:
    short, bare_group, bare = side_by_side(empty, [("keys", "create", "-h"), ("keys",), ()])
    assert short.returncode == 0 and "--for" in short.stdout
    # A group or the program alone shows its help and exits 2 (a usage error).
    for done, usage in ((bare_group, "tollway keys"), (bare, "tollway")):
        assert done.returncode == 2
        assert f"Usage: {usage} " in done.stdout + done.stderr
        assert "error" not in done.stderr.lower()


def test_usage_errors_exit_2_before_any_connection(empty: Path) -> None:
    # Nothing listens at this URL and there is no key: a usage error must be reported as
    # such, not as "cannot reach" or "no master key".
    nowhere = ("--url", f"http://127.0.0.1:{free_port()}")
    checks: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        (("keys", "lst"), ("No such command 'lst'", "'list'")),
        (("keys", "create", *nowhere), ("Missing option '--name'",)),
        (("keys", "create", "--name", "x", "--rpm", "abc", *nowhere), ("--rpm",)),
        (("keys", "create", "--name", "x", "--for", "vim", *nowhere), ("vim", "codex")),
        (("keys", "create", "--name", "x", "--model", "m", *nowhere), ("--model", "--for")),
        (
            ("keys", "create", "--name", "x", "--for", "codex", "--model", "a", "--models", "b"),
            ("--model", "--models"),
        ),
        (
            ("keys", "create", "--name", "x", "--for", "env", "--base-url", "ftp://h"),
            ("--base-url",),
        ),
        (
            ("keys", "create", "--name", "x", "--meta", "novalue", *nowhere),
            ("--meta", "name=value"),
        ),
        (("keys", "update", "key_x", *nowhere), ("nothing to update",)),
        (("projects", "update", "p", *nowhere), ("nothing to update",)),
        (("keys", "list", "--url", "localhost:8080"), ("--url", "TOLLWAY_URL", "localhost:8080")),
        (("spend", "--url", "http://h:port"), ("--url",)),
        (("audit", "list", "--limit", "0", *nowhere), ("--limit",)),
        (("nope",), ("No such command 'nope'",)),
    ]
    results = side_by_side(empty, [args for args, _ in checks])
    for (args, fragments), done in zip(checks, results, strict=True):
        line = one_line(done, 2, *fragments)
        assert "cannot reach" not in line and "no master key" not in line, (args, line)
    assert list(empty.iterdir()) == []


def test_failures_exit_1_and_say_what_to_do(empty: Path) -> None:
    port = free_port()
    (empty / "dir-without-key").mkdir()
    no_key, other_dir, refused, from_env = side_by_side(
        empty,
        [
            ("keys", "list"),
            ("spend", "quarantine", "--data-dir", "dir-without-key"),
            ("audit", "verify", "--master-key", "sk-any", "--url", f"http://127.0.0.1:{port}"),
            ("projects", "list"),
        ],
        TOLLWAY_URL=f"http://127.0.0.1:{port}",
    )
    one_line(no_key, 1, "no master key", "--master-key", "TOLLWAY_MASTER_KEY", "./.tollway")
    one_line(other_dir, 1, "dir-without-key/master_key", "--data-dir")
    one_line(refused, 1, "cannot reach the gateway", str(port), "--url", "TOLLWAY_URL")
    one_line(from_env, 1, "no master key")


def test_the_generated_key_is_read_from_the_data_dir(empty: Path) -> None:
    # With no key given, the one `tollway serve` generated in ./.tollway (or --data-dir,
    # or TOLLWAY_DATA_DIR) is used: the call then fails only because nothing listens.
    for data_dir in (empty / ".tollway", empty / "elsewhere"):
        data_dir.mkdir()
        (data_dir / "master_key").write_text("sk-tw-master-generated\n", encoding="utf-8")
    (empty / "sub").mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    elsewhere = str(empty / "elsewhere")
    with ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(tollway, "keys", "list", "--url", url, cwd=empty),
            pool.submit(
                tollway, "keys", "list", "--url", url, "--data-dir", elsewhere, cwd=empty / "sub"
            ),
            pool.submit(
                tollway, "keys", "--url", url, "list", cwd=empty / "sub", TOLLWAY_DATA_DIR=elsewhere
            ),
        ]
        for run in runs:
            one_line(run.result(), 1, "cannot reach the gateway")
