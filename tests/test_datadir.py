"""The data dir is owner-only (0700) and its generated secrets are written once, whole.

The app is built for real (``harness.GatewayServer``) and ``tollway serve`` runs as a real
process (``served.ServedGateway``); the races use real threads and processes.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from fake_upstream import FakeUpstream
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, OPENAI_UPSTREAM_KEY, GatewayServer
from served import ServedGateway
from tollway.auth.master import ensure_master_key, master_key_path
from tollway.auth.secrets import SECRET_FILE, ServerKeys, server_secret
from tollway.datadir import DataDirError, ensure_data_dir
from tollway.settings import Settings

RACERS = 16
PROCESS_RACERS = 8


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 0: whatever the code does not restrict itself comes out world-accessible."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_app_makes_the_data_dir_0700_with_both_secrets_configured(
    tmp_path: Path, fake: FakeUpstream, loose_umask: None
) -> None:
    data_dir = tmp_path / "fresh" / "data"
    settings = Settings(
        master_key=MASTER_KEY,
        secret_key="s" * 48,
        data_dir=data_dir,
        # The database elsewhere (as with Postgres): nothing made the data dir 0700 before
        # the spend journal made its subdirectory (and the data dir with it, 0755).
        database_url=f"sqlite:///{tmp_path / 'db' / 'tollway.db'}",
        providers={"oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": "sk-x-1"}},
        models=[{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM}],
    )

    server = GatewayServer(settings).start()
    try:
        assert mode(data_dir) == 0o700
        assert (data_dir / "journal").is_dir()
        assert not (data_dir / "master_key").exists()
        assert not (data_dir / SECRET_FILE).exists()
    finally:
        server.stop()


def test_an_existing_open_data_dir_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)

    with caplog.at_level(logging.WARNING, logger="tollway.datadir"):
        ensure_master_key(Settings(master_key="sk-configured", data_dir=data_dir))

    assert mode(data_dir) == 0o700
    [record] = [r for r in caplog.records if r.name == "tollway.datadir"]
    assert record.levelno == logging.WARNING
    assert record.fields == {"path": str(data_dir), "was": "0755", "now": "0700"}  # type: ignore[attr-defined]


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a directory")

    with pytest.raises(DataDirError, match="not a directory"):
        ensure_data_dir(path)


def test_generated_files_are_0600_in_a_0700_dir(tmp_path: Path, loose_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    key, generated = ensure_master_key(settings)
    secret = server_secret(settings)

    assert generated and key.startswith("sk-tw-master-")
    assert len(secret) >= 48
    assert mode(settings.data_dir) == 0o700
    assert mode(master_key_path(settings)) == 0o600
    assert mode(settings.data_dir / SECRET_FILE) == 0o600
    # The temporary files the values were written through are gone.
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["master_key", SECRET_FILE]


def test_an_open_secret_file_is_tightened(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    secret = server_secret(settings)
    (settings.data_dir / SECRET_FILE).chmod(0o644)

    assert server_secret(settings) == secret
    assert mode(settings.data_dir / SECRET_FILE) == 0o600


@pytest.mark.parametrize("name", [SECRET_FILE, "master_key"])
def test_an_empty_generated_file_is_an_error_not_an_empty_secret(tmp_path: Path, name: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(mode=0o700)
    (settings.data_dir / name).write_text("\n")

    with pytest.raises(DataDirError, match="is empty"):
        ensure_master_key(settings)
        ServerKeys.from_settings(settings)


@pytest.mark.parametrize("round_", range(20))  # a lost race shows in about a third of rounds
def test_threads_creating_at_once_all_get_one_value(tmp_path: Path, round_: int) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    start = threading.Barrier(RACERS)

    def create(_: int) -> tuple[str, str]:
        start.wait()
        key, _ = ensure_master_key(settings)
        return key, server_secret(settings)

    with ThreadPoolExecutor(RACERS) as pool:
        results = set(pool.map(create, range(RACERS)))

    assert len(results) == 1
    [(key, secret)] = results
    assert key and secret
    assert master_key_path(settings).read_text().strip() == key
    assert (settings.data_dir / SECRET_FILE).read_text().strip() == secret


# A process that imports only what it races with, says so, waits for "go" on stdin, then
# creates the secret and prints what it got.
RACER = """
import os, sys
from pathlib import Path
from tollway.datadir import ensure_generated
print("ready", flush=True)
sys.stdin.readline()
value, created = ensure_generated(Path(sys.argv[1]), lambda: os.urandom(24).hex())
print(value, created, flush=True)
"""


def test_processes_creating_at_once_all_get_one_value(tmp_path: Path) -> None:
    path = tmp_path / "data" / SECRET_FILE
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESS_RACERS)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    for racer in racers:  # all are waiting: release them together
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    seen = [racer.communicate(timeout=30)[0].split() for racer in racers]

    assert all(racer.returncode == 0 for racer in racers)
    values = {value for value, _ in seen}
    assert len(values) == 1
    [value] = values
    assert len(value) == 48
    assert [created for _, created in seen].count("True") == 1
    assert path.read_text().strip() == value
    assert mode(path) == 0o600


def test_serve_with_workers_creates_the_data_dir_and_secrets_first(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "tollway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data_dir),
                "providers": {
                    "oa": {
                        "type": "openai",
                        "base_url": fake.url + "/v1",
                        "api_key": OPENAI_UPSTREAM_KEY,
                    }
                },
                "models": [{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM}],
            }
        )
    )

    gateway = ServedGateway(config, data_dir, workers=2).start()
    try:
        key = (data_dir / "master_key").read_text().strip()
        statuses = {
            httpx.get(
                gateway.url + "/v1/models", headers={"authorization": f"Bearer {key}"}
            ).status_code
            for _ in range(8)
        }
    finally:
        gateway.stop()

    assert statuses == {200}
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "master_key") == 0o600
    assert mode(data_dir / SECRET_FILE) == 0o600
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]
