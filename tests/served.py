"""``tollway serve`` as a real subprocess for tests that need real processes (workers,
restarts, ``kill -9``): launch on a free port, wait for readiness, stop or kill."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TOLLWAY = str(Path(sys.executable).parent / "tollway")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The parent environment without anything that would steer tollway or the SDKs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOLLWAY_", "OPENAI_", "ANTHROPIC_"))
    }
    env.update(extra)
    return env


@dataclass
class ServedGateway:
    """``tollway serve --config`` in its own process group, logging to a file per port."""

    config: Path
    data_dir: Path
    workers: int = 1
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ca_file: Path | None = None  # set when the config serves TLS: the certificate to trust

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with ``ca_file``)."""
        scheme = "https" if self.ca_file is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client passes as ``verify`` to trust this gateway."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def log_path(self) -> Path:
        """Where the process's output goes."""
        return self.config.with_suffix(f".{self.port}.log")

    @property
    def db_path(self) -> Path:
        """The SQLite file (when the config uses the default database)."""
        return self.data_dir / "tollway.db"

    def start(self, timeout: float = 120.0) -> ServedGateway:
        """Launch and wait until ``/health/ready`` answers 200 (a start of several workers
        on a busy 2-core host has taken over 60 s; a ready one returns at once).

        A free port can be taken by someone else before the server binds it: then the
        launch is retried on another port."""
        for attempt in range(3):
            self.port = free_port() if attempt or not self.port else self.port
            seen = len(self.log_text())
            try:
                return self._launch(timeout)
            except RuntimeError:
                if "address already in use" not in self.log_text()[seen:].lower():
                    raise
        raise RuntimeError(f"no free port for the gateway:\n{self.log_text()}")

    def _launch(self, timeout: float) -> ServedGateway:
        command = [TOLLWAY, "serve", "--config", str(self.config), "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env=clean_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, verify=self.verify()) as client:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise RuntimeError(f"the gateway exited early:\n{self.log_text()}")
                try:
                    if client.get(self.url + "/health/ready").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the gateway did not become ready:\n{self.log_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (uvicorn stops its workers); SIGKILL the group if it hangs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def kill(self) -> None:
        """SIGKILL the process group: no shutdown, no flush."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_text(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
