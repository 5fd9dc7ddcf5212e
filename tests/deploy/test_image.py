"""The Dockerfile, without a Docker daemon: its layout (multi-stage, the lock, a non-root
user, the data volume, the healthcheck, `tollway serve`), its build context, and the
image's entry point and HEALTHCHECK command run for real against a served gateway, with
the image's environment. (hadolint lints it in `make lint`.)"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType

import httpx
import pytest
import yaml
from deploy_support import DEPLOY, REPO, dockerfile, final_stage, image_env

from served import clean_env, free_port

ENTRYPOINT = DEPLOY / "entrypoint.py"
BIN = Path(sys.executable).parent


def entrypoint_module() -> ModuleType:
    """deploy/entrypoint.py, imported from its path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("tollway_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_stages_and_only_the_lock_installs() -> None:
    instructions = dockerfile()
    froms = [i.text for i in instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    (base,) = [i.text for i in instructions if i.keyword == "ARG" and "PYTHON_IMAGE" in i.text]
    assert base.startswith("PYTHON_IMAGE=python:3.11-slim")
    installs = [i.text for i in instructions if i.keyword == "RUN" and i.stage == 0]
    assert installs[0] == (
        "pip install --no-cache-dir --require-hashes --no-deps -r requirements-uv.txt"
    )
    # uv sync --locked: exactly uv.lock's versions and hashes, or the build stops.
    assert all("--locked" in r and "--no-dev" in r for r in installs[1:])
    assert len(installs) == 3
    # The final stage copies the built environment: no compiler, no uv, no sources.
    final = final_stage()
    assert next(i.text for i in final if i.keyword == "COPY") == (
        "--from=build /opt/tollway /opt/tollway"
    )
    assert not [i for i in final if i.keyword == "RUN" and ("pip" in i.text or "uv" in i.text)]


def test_the_image_runs_tollway_serve_as_a_non_root_user() -> None:
    final = {i.keyword: i for i in final_stage()}
    user, _, group = final["USER"].text.partition(":")
    assert int(user) >= 1000 and int(group) >= 1000
    assert final["ENTRYPOINT"].exec_form() == ["tollway-entrypoint", "tollway"]
    assert final["CMD"].exec_form() == ["serve"]
    env = image_env()
    assert final["EXPOSE"].text == env["TOLLWAY_PORT"] == "8080"
    assert env["TOLLWAY_HOST"] == "0.0.0.0"
    assert env["PATH"].startswith("/opt/tollway/bin:")
    # ./tollway.yaml is where `tollway serve` looks: a config mounted there is found.
    assert final["WORKDIR"].text == "/etc/tollway"


def test_the_data_dir_is_inside_the_volume_owned_by_the_user() -> None:
    final = final_stage()
    data_dir = PurePosixPath(image_env()["TOLLWAY_DATA_DIR"])
    (volume,) = [i.exec_form() for i in final if i.keyword == "VOLUME"]
    assert volume == [str(data_dir.parent)]
    (user,) = [i.text for i in final if i.keyword == "USER"]
    uid = user.split(":")[0]
    # The volume's mount point exists in the image, owned by the user: a fresh named
    # volume starts with that owner, and the gateway makes the data dir (0700) inside.
    (setup,) = [i.text for i in final if i.keyword == "RUN"]
    assert f"--uid {uid}" in setup
    assert f"--owner={uid}" in setup and str(data_dir.parent) in setup


def test_the_healthcheck_asks_the_liveness_endpoint() -> None:
    (healthcheck,) = [i for i in final_stage() if i.keyword == "HEALTHCHECK"]
    command = healthcheck.exec_form()
    assert command[:2] == ["python", "-c"]
    assert "'/health/live'" in command[2] and "TOLLWAY_PORT" in command[2]


def test_the_build_context_holds_what_the_build_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything is left out unless named
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = []
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and "--from=" not in instruction.text:
            words = [w for w in instruction.text.split() if not w.startswith("--")]
            sources += words[:-1]
    assert sources
    for source in sources:
        path = PurePosixPath(source)
        assert {str(path), *map(str, path.parents)} & included, source
        assert (REPO / source).exists(), source
    for private in (".venv", ".git", ".tollway", "deploy/secrets", "tollway.yaml", "deploy"):
        assert private not in included


def test_secret_files_become_variables() -> None:
    entrypoint = entrypoint_module()
    environ = {
        "TOLLWAY_MASTER_KEY_FILE": str(ENTRYPOINT),  # any readable file will do
        "OPENAI_API_KEY_FILE": str(ENTRYPOINT),
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",  # a path, left alone
        "HOME": "/var/lib/tollway",
    }
    result = entrypoint.secrets_from_files(environ)
    text = ENTRYPOINT.read_text(encoding="utf-8").rstrip("\r\n")
    assert result["TOLLWAY_MASTER_KEY"] == result["OPENAI_API_KEY"] == text
    assert "TOLLWAY_MASTER_KEY_FILE" not in result and "OPENAI_API_KEY_FILE" not in result
    assert result["SSL_CERT_FILE"] == environ["SSL_CERT_FILE"] and "SSL_CERT" not in result
    assert result["HOME"] == "/var/lib/tollway"


def test_a_secret_given_twice_or_unreadable_is_refused(tmp_path: Path) -> None:
    entrypoint = entrypoint_module()
    with pytest.raises(entrypoint.EntrypointError, match="both TOLLWAY_SECRET_KEY and"):
        entrypoint.secrets_from_files(
            {"TOLLWAY_SECRET_KEY": "x", "TOLLWAY_SECRET_KEY_FILE": str(ENTRYPOINT)}
        )
    missing = tmp_path / "absent"
    with pytest.raises(entrypoint.EntrypointError, match=f"cannot read {missing}"):
        entrypoint.secrets_from_files({"POSTGRES_PASSWORD_FILE": str(missing)})
    run = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "true"],
        env={"PATH": os.environ["PATH"], "POSTGRES_PASSWORD_FILE": str(missing)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: POSTGRES_PASSWORD_FILE: cannot read")


def healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command, run here against ``port``; its exit status."""
    (instruction,) = [i for i in final_stage() if i.keyword == "HEALTHCHECK"]
    command = instruction.exec_form()
    command[0] = sys.executable  # the image's `python` is its environment's
    env = clean_env(TOLLWAY_PORT=str(port))
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


@pytest.fixture
def image_like(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`tollway-entrypoint tollway serve` with the image's environment: the config in the
    working directory, the data dir inside a "volume", the master key in a secret file."""
    port = free_port()
    workdir, volume, secrets = tmp_path / "etc", tmp_path / "volume", tmp_path / "secrets"
    for directory in (workdir, volume, secrets):
        directory.mkdir()
    (workdir / "tollway.yaml").write_text(yaml.safe_dump({"log": {"level": "warning"}}))
    (secrets / "master_key").write_text("sk-tw-master-from-a-secret-file\n")
    data_dir = volume / PurePosixPath(image_env()["TOLLWAY_DATA_DIR"]).name
    variables = {k: v for k, v in image_env().items() if k.startswith("TOLLWAY_")}
    variables.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        TOLLWAY_HOST="127.0.0.1",  # the image listens on every interface; a test need not
        TOLLWAY_PORT=str(port),
        TOLLWAY_DATA_DIR=str(data_dir),
        TOLLWAY_MASTER_KEY_FILE=str(secrets / "master_key"),
    )
    env = clean_env(**variables)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "tollway", "serve"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process, port, data_dir
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def test_the_image_command_serves_and_passes_its_healthcheck(
    image_like: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    process, port, data_dir = image_like
    deadline = time.monotonic() + 90
    while healthcheck(port) != 0:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.2)
    # The master key came from the secret file: it is the one the gateway accepts, and
    # none was generated into the data dir, which the gateway made owner-only.
    url = f"http://127.0.0.1:{port}/api/v1/keys"
    good = {"authorization": "Bearer sk-tw-master-from-a-secret-file"}
    assert httpx.get(url, headers=good, timeout=5).status_code == 200
    assert httpx.get(url, headers={"authorization": "Bearer x"}, timeout=5).status_code == 401
    assert not (data_dir / "master_key").exists()
    assert data_dir.stat().st_mode & 0o777 == 0o700
    # SIGTERM (what `docker stop` sends) ends it cleanly; then the healthcheck fails.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert healthcheck(port) != 0
