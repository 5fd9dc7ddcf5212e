"""The agent CLIs the clients suite drives, installed once from the npm registry.

Claude Code, Codex and OpenCode are pinned here and installed with ``npm install`` into a
user cache directory (``$XDG_CACHE_HOME/tollway/test-agents/<hash of the pins>``, shared by
every checkout on the machine and by CI's fresh clones), so only the first run downloads
them (about 1.2 GB, mostly native binaries in per-platform packages).

Claude Code's and OpenCode's launchers are placeholders that their postinstall scripts
replace with the platform's native binary; npm 11 runs install scripts by default but
prints that "a future release will block unreviewed install scripts", so the manifest
approves those two by name (``allowScripts``). Each binary must then report its pinned
version before the install is kept: a half-done install never passes for a cached one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# name on npm -> (version, the command it installs)
PINS = {
    "@anthropic-ai/claude-code": ("2.1.332", "claude"),
    "@openai/codex": ("0.171.0", "codex"),
    "opencode-ai": ("1.18.33", "opencode"),
}
# Whose postinstall swaps the placeholder launcher for the native binary.
SCRIPTS_ALLOWED = ("@anthropic-ai/claude-code", "opencode-ai")
INSTALL_TIMEOUT = 900.0
VERSION_TIMEOUT = 60.0
UNUSED_DAYS = 30  # installs of other pins (other branches) are removed after this


class InstallError(RuntimeError):
    """The agents could not be installed here; the message says why and what to check."""


@dataclass(frozen=True)
class Agents:
    """Paths of the installed agent commands."""

    root: Path

    def bin(self, command: str) -> Path:
        """``node_modules/.bin/<command>``."""
        return self.root / "node_modules" / ".bin" / command

    @property
    def claude(self) -> Path:
        """Claude Code."""
        return self.bin("claude")

    @property
    def codex(self) -> Path:
        """Codex."""
        return self.bin("codex")

    @property
    def opencode(self) -> Path:
        """OpenCode."""
        return self.bin("opencode")


def manifest() -> dict[str, object]:
    """The ``package.json`` of the install: exact pins, and whose scripts may run."""
    return {
        "name": "tollway-test-agents",
        "private": True,
        "description": "Agent CLIs for Tollway's clients test suite (tests/clients).",
        "dependencies": {name: version for name, (version, _) in PINS.items()},
        "allowScripts": dict.fromkeys(SCRIPTS_ALLOWED, True),
    }


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/tollway/test-agents`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tollway" / "test-agents"


def install_dir() -> Path:
    """Where this set of pins lives: a new pin gets a new directory."""
    text = json.dumps(manifest(), sort_keys=True).encode()
    return cache_root() / hashlib.sha256(text).hexdigest()[:16]


STAMP = ".installed"


def installed() -> Agents | None:
    """The cached install, when a complete one is there."""
    root = install_dir()
    agents = Agents(root)
    stamp = root / STAMP
    if stamp.is_file() and all(
        os.access(agents.bin(command), os.X_OK) for _, command in PINS.values()
    ):
        stamp.touch()  # in use: not pruned
        return agents
    return None


def ensure_agents() -> Agents:
    """The cached install, or install it now (one process at a time per machine)."""
    found = installed()
    if found is not None:
        return found
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise InstallError(f"{tool} is not on PATH (the agent CLIs come from npm)")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        found = installed()  # another process may have finished while we waited
        if found is not None:
            return found
        return _install(root)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(root: Path) -> Agents:
    """npm install into a scratch dir, check every version, then move it into place."""
    final = install_dir()
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        (scratch / "package.json").write_text(json.dumps(manifest(), indent=2) + "\n")
        log = root / "npm-install.log"
        command = ["npm", "install", "--prefix", str(scratch), "--no-audit", "--no-fund"]
        with log.open("wb") as out:
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=scratch,
                    timeout=INSTALL_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise InstallError(f"npm install took over {INSTALL_TIMEOUT:.0f}s") from exc
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise InstallError(f"npm install failed ({done.returncode}), see {log}:\n{tail}")
        agents = Agents(scratch)
        for name, (version, command_name) in PINS.items():
            _check_version(agents.bin(command_name), name, version, scratch)
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)
        (final / STAMP).write_text(json.dumps(manifest(), sort_keys=True) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(root, keep=final)
    return Agents(final)


def _check_version(path: Path, name: str, version: str, scratch: Path) -> None:
    """The command runs and says it is ``version`` (a placeholder launcher does not)."""
    home = scratch / ".version-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    try:
        done = subprocess.run(
            [str(path), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{name}: {path} --version failed: {exc}") from exc
    if version not in done.stdout:
        raise InstallError(
            f"{name}: {path} --version printed {done.stdout.strip()!r}, not {version} "
            f"(did its postinstall run?) {done.stderr.strip()[-500:]}"
        )
    shutil.rmtree(home, ignore_errors=True)


def _prune(root: Path, keep: Path) -> None:
    """Remove installs of other pins unused for a month (each is over a gigabyte), and
    what crashed installs left (we hold the lock: no other install is running)."""
    cutoff = time.time() - UNUSED_DAYS * 86400
    for child in root.iterdir():
        if not child.is_dir() or child == keep:
            continue
        stamp = child / STAMP
        if not stamp.exists() or stamp.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
