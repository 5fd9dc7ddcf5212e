"""The benchmark's child processes (fake upstream, floor proxy, gateway) and where they run.

Each proxy is pinned to ``PROXY_CPU``; the fake upstream, wrk and the driver's own
streaming client share ``LOAD_CPU``. Children get their own process group (so their
children stop with them) and SIGKILL if the driver dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
PROXY_CPU = 0
LOAD_CPU = 1
# Decided once, before the driver pins itself to LOAD_CPU.
CPUS_AVAILABLE = len(os.sched_getaffinity(0))
CAN_PIN = CPUS_AVAILABLE >= 2 and shutil.which("taskset") is not None


class BenchError(Exception):
    """The benchmark cannot continue (a process died, a proxy returned errors, ...)."""


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the report)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port free on HOST right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def taskset(cpu: int) -> list[str]:
    """The command prefix that pins a child to ``cpu`` (nothing on a 1-CPU machine)."""
    return ["taskset", "-c", str(cpu)] if CAN_PIN else []


def die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the driver dies without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class Service:
    """A child process with its log file and a health URL."""

    name: str
    cmd: list[str]
    port: int
    health_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, cwd: Path, env: dict[str, str]) -> None:
        log(f"starting {self.name}: {' '.join(self.cmd)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we can stop its children too
                preexec_fn=die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise BenchError(
                f"{self.name} exited (status {code}); last log lines:\n{self.log_tail()}"
            )

    def wait_ready(self, timeout_s: float) -> float:
        """Poll GET health_path until 200; returns the seconds waited."""
        start = time.monotonic()
        last = "no answer"
        while time.monotonic() - start < timeout_s:
            self.check_alive()
            conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
            try:
                conn.request("GET", self.health_path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {resp.status}: {body[:200]!r}"
            except OSError as exc:
                last = repr(exc)
            finally:
                conn.close()
            time.sleep(0.05)
        raise BenchError(
            f"{self.name} not ready after {timeout_s:.0f}s (GET {self.health_path}: {last})\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for 10s; killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def clean_env() -> dict[str, str]:
    """The environment for children: no TOLLWAY_* or provider key variables (the config
    file the driver writes is the whole configuration)."""
    dropped = ("TOLLWAY_", "OPENAI_", "ANTHROPIC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
