"""Agent CLIs run as subprocesses: a clean environment each, every run a module needs
started together in worker threads, and the checks of a finished run.

The agents take seconds each, mostly starting up (OpenCode about ten on this machine),
so a module's runs go side by side and each test then waits for its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clients_support import (
    MODELS,
    EgressTrap,
    Script,
    VirtualKey,
    check_turn,
    mint_key,
)

from fake_upstream import FakeUpstream
from harness import GatewayServer

RUN_TIMEOUT = 120.0
"""Seconds one agent CLI run may take (its whole process group is killed then)."""


@dataclass
class AgentRun:
    """One agent CLI invocation: prepared in the test thread, run in a worker."""

    label: str
    model: str
    upstream: str
    script: Script
    key: VirtualKey
    argv: list[str] = field(repr=False)
    env: dict[str, str] = field(repr=False)
    cwd: Path = field(repr=False)
    trap: EgressTrap = field(repr=False)
    returncode: int | None = None
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)
    seconds: float = 0.0

    def run(self) -> AgentRun:
        """Run to the end or the time limit (then its whole process group is killed)."""
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            try:
                self.stdout, self.stderr = process.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                self.stdout, self.stderr = process.communicate()
                self.stderr += f"\n[killed after {RUN_TIMEOUT:.0f}s]"
        finally:
            self.trap.close()
        self.returncode = process.returncode
        self.seconds = time.monotonic() - started
        return self


def base_env(home: Path, trap: EgressTrap) -> dict[str, str]:
    """A clean environment for an agent: nothing of ours (keys, proxies) leaks in, its
    home and XDG dirs are fresh, and outbound traffic goes to the trap."""
    for sub in ("config", "data", "cache", "state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "USER": os.environ.get("USER", "root"),
        "SHELL": shutil.which("bash") or "/bin/bash",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "TMPDIR": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        **trap.env(),
    }


Case = tuple[str, str]  # (upstream, turn)
Build = Callable[[str, str, Script, VirtualKey, Path, EgressTrap], tuple[list[str], dict[str, str]]]
"""Builds an agent's argv and env from (model, upstream, script, key, home, trap)."""


class AgentRuns:
    """Every run a module's selected tests need, started together in worker threads.

    The agents take seconds each, mostly starting up; running them side by side keeps the
    suite short. Each test then waits for its own run."""

    def __init__(
        self,
        client: str,
        build: Build,
        gateway: GatewayServer,
        fake: FakeUpstream,
        workdir: Path,
        workers: int = 4,
    ) -> None:
        self.client = client
        self._build = build
        self._gateway = gateway
        self._fake = fake
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=client)
        self._runs: dict[Case, Future[AgentRun]] = {}

    def start(self, cases: list[Case]) -> None:
        """Prepare (key, script, dirs) each case here, run them in the workers."""
        for case in cases:
            if case not in self._runs:
                self._runs[case] = self._pool.submit(self._prepare(case).run)

    def result(self, upstream: str, turn: str) -> AgentRun:
        """The finished run of a case (started now when nobody asked for it yet)."""
        self.start([(upstream, turn)])
        return self._runs[upstream, turn].result()

    def close(self) -> None:
        """Wait for the runs still going (each is time-limited)."""
        self._pool.shutdown(wait=True)

    def _prepare(self, case: Case) -> AgentRun:
        upstream, turn = case
        model = MODELS[upstream]
        label = f"{self.client}-{upstream}-{turn}"
        script = Script(turn)
        script.install(self._fake)
        key = mint_key(self._gateway, label, model)
        home = self._workdir / label
        work = home / "work"
        work.mkdir(parents=True)
        trap = EgressTrap()
        argv, env = self._build(model, upstream, script, key, home, trap)
        env["PWD"] = str(work)  # Bun-built agents take the directory from PWD
        return AgentRun(label, model, upstream, script, key, argv, env, work, trap)


def selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    """The (upstream, turn) cases of the selected tests in the requesting module."""
    cases: list[Case] = []
    for item in request.session.items:
        params = getattr(item, "callspec", None)
        if getattr(item, "module", None) is not request.module or params is None:
            continue
        upstream, turn = params.params.get("upstream"), params.params.get("turn")
        if isinstance(upstream, str) and isinstance(turn, str):
            cases.append((upstream, turn))
    return cases


def agent_detail(run: AgentRun) -> str:
    """A run's exit, time and output tails, for failure messages."""
    return (
        f"exit {run.returncode} after {run.seconds:.1f}s\n"
        f"stdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-2500:]}"
    )


def check_agent_run(run: AgentRun, gateway: GatewayServer, fake: FakeUpstream) -> None:
    """``check_turn`` for a finished CLI run (which must also have exited 0)."""
    detail = agent_detail(run)
    assert run.returncode == 0, f"{run.label} failed: {detail}"
    check_turn(
        label=run.label,
        output=run.stdout,
        script=run.script,
        upstream=run.upstream,
        model=run.model,
        key=run.key,
        gateway=gateway,
        fake=fake,
        egress=run.trap.seen,
        detail=detail,
    )
