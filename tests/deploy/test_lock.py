"""uv.lock: it matches pyproject.toml, uv itself is pinned with hashes, and everything
the image installs comes as a wheel for its Python on Linux (x86_64 and arm64): the
image's build stage has no compiler. README: "Dependencies and the lock file"."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_support import REPO, dockerfile
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

UV = Path(sys.executable).parent / "uv"
# Debian trixie's C library: the image's base (python:3.11-slim-trixie).
GLIBC = (2, 41)


def test_the_lock_matches_pyproject() -> None:
    run = subprocess.run(
        [str(UV), "lock", "--check", "--offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, f"uv.lock is out of date: run `make lock`\n{run.stderr}"


def test_uv_is_pinned_with_hashes_and_allowed_by_the_project() -> None:
    text = (REPO / "requirements-uv.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    requirement = Requirement(lines[0].rstrip(" \\"))
    assert requirement.name == "uv"
    (pin,) = requirement.specifier
    assert pin.operator == "=="
    assert all(
        re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()) for line in lines[1:]
    )
    assert len(lines) > 10  # a wheel per platform
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert Version(pin.version) in SpecifierSet(project["tool"]["uv"]["required-version"])


def image_python() -> tuple[int, int]:
    """The image's Python (from the Dockerfile's base image, python:3.X-slim-...)."""
    (arg,) = [i.text for i in dockerfile() if i.keyword == "ARG" and "PYTHON_IMAGE" in i.text]
    found = re.search(r"python:(\d+)\.(\d+)-slim", arg)
    assert found, arg
    return int(found.group(1)), int(found.group(2))


def runtime_packages(python: tuple[int, int], machine: str) -> dict[str, str]:
    """What `uv sync --no-dev` installs in the image: {name: version}, from uv.lock."""
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    environment = {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": f"{python[0]}.{python[1]}",
        "python_full_version": f"{python[0]}.{python[1]}.0",
    }
    packages = {}
    for line in exported.splitlines():
        if not line or line.startswith(("#", " ")):
            continue
        pinned, _, marker = line.partition(" ; ")
        if marker and not Marker(marker).evaluate(environment):
            continue
        name, _, version = pinned.partition("==")
        packages[canonicalize_name(name.split("[")[0])] = version
    return packages


def image_tags(python: tuple[int, int], machine: str) -> set[Tag]:
    """The wheel tags pip would accept in the image."""
    platforms = [f"manylinux_{GLIBC[0]}_{minor}_{machine}" for minor in range(GLIBC[1], 4, -1)]
    platforms += [f"manylinux2014_{machine}", "linux_" + machine]
    return set(cpython_tags(python, platforms=platforms)) | set(
        compatible_tags(python, platforms=platforms)
    )


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_image_installs_wheels_only(machine: str) -> None:
    python = image_python()
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    wheels: dict[tuple[str, str], list[str]] = {}
    for package in lock["package"]:
        key = (canonicalize_name(package["name"]), package["version"])
        wheels[key] = [w["url"].rsplit("/", 1)[-1] for w in package.get("wheels", [])]
    accepted = image_tags(python, machine)
    packages = runtime_packages(python, machine)
    assert {"uvicorn", "sqlalchemy", "asyncpg", "uvloop"} <= packages.keys()
    missing = [
        f"{name}=={version}"
        for name, version in sorted(packages.items())
        if not any(parse_wheel_filename(w)[3] & accepted for w in wheels[(name, version)])
    ]
    assert missing == [], f"no wheel for Python {python} on {machine}: {missing}"
