"""Private Redis and PostgreSQL servers that outage tests may stop and start at will.

The machine's shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) serve every
other test and every engineer on it, so an outage test must never stop them. Instead it
gets its own server on a free port, in its own temp dir, and stops/starts that one; a
restarted server comes back on the SAME port, so a gateway configured with ``.url``
sees a real outage and a real recovery.

Use from a test module (or once, from the top-level ``tests/conftest.py``)::

    pytest_plugins = ["services"]

    async def test_gateway_survives_redis_outage(private_redis: PrivateRedis) -> None:
        gateway = launch(redis_url=private_redis.url)
        private_redis.stop()            # connections to the port are now refused
        ...                             # the gateway must degrade, not crash
        private_redis.start()           # same port, answers PING again

``private_redis`` / ``private_postgres`` are one server per test session (PostgreSQL's
``initdb`` is the slow part, so it runs once) with a per-test guarantee: each test starts
with the server running (Redis also emptied). ``private_postgres.create_database()`` gives
a test its own database. Missing or broken binaries skip, except under ``CI=true`` where
they fail (see ``require``). Outside pytest, both classes are context managers.

PostgreSQL refuses to run as root, so when the tests run as root its binaries run as the
``postgres`` OS user, with the cluster in a temp dir that user owns.

PYTEST_DONT_REWRITE: a test module imports this before ``pytest_plugins`` registers it,
too late for assertion rewriting (pytest would warn); it has no asserts to rewrite.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, NoReturn, Self, TypedDict

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POLL = 0.005

# Appended to postgresql.conf: no fsync (the cluster is disposable and the OS does not
# crash, so even an immediate stop loses nothing), no background work the tests do not
# need, TCP on 127.0.0.1 only. synchronous_commit stays on: with it off an immediate
# stop loses the last commits, which a test of crash recovery would take for a bug (and
# without fsync a commit's WAL flush is only a write to the page cache anyway).
_PG_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'1GB'",
    "checkpoint_timeout": "'1h'",
    "autovacuum": "off",
    "jit": "off",
    "shared_buffers": "'32MB'",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
    "logging_collector": "off",
}


# --------------------------------------------------------------------------- helpers


def require(reason: str) -> NoReturn:
    """Skip the test for ``reason``; under ``CI=true`` fail instead (CI must not pass by
    skipping the outage tests)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A free 127.0.0.1 port BELOW the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` or outgoing connections could be taken
    by some client's source port while our server is stopped, and the restart on the
    same port would then fail; ports below the range are never handed out implicitly.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(min(20000, low - 1000), low - 1)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port below the ephemeral range ({low})")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """Could a server bind ``port``? (SO_REUSEADDR like Redis and PostgreSQL, so that
    TIME_WAIT remnants of a stopped server's connections do not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_refuses(port: int) -> bool:
    """True when a TCP connection to 127.0.0.1:``port`` is refused (nothing listens)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _wait_refused(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not port_refuses(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: port {port} still accepts connections after stop")
        time.sleep(POLL)


def _port_taken_by_someone_else(port: int, ever_started: bool) -> bool:
    """A failed FIRST start because another process grabbed the port since we picked it
    (then the caller may pick another); after that the port is fixed, so never."""
    return not ever_started and not _bindable(port)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- Redis


class PrivateRedis:
    """A ``redis-server`` of our own on a free port: no persistence, own temp dir.

    ``stop()`` really takes it away (connections refused), ``start()`` brings it back
    empty on the same port, so tests can cut Redis without touching the shared one.
    """

    def __init__(self, binary: str = "redis-server") -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tollway-redis-"))
        self.log = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ever_started = False
        self._closed = False
        atexit.register(self.close)

    @staticmethod
    def unavailable_reason(binary: str = "redis-server") -> str | None:
        """Why a private Redis cannot run here, or None when it can."""
        path = shutil.which(binary)
        if path is None:
            return f"{binary} is not on PATH"
        try:
            subprocess.run([path, "--version"], check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{path} cannot run: {exc!r}"
        return None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """Our process is alive and answers PING."""
        return self._proc is not None and self._proc.poll() is None and self._pings()

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start (again) on ``self.port`` and wait until it answers PING."""
        if self._closed:
            raise RuntimeError("PrivateRedis is closed")
        if self._proc is not None and self._proc.poll() is None:
            return self
        for attempt in range(3):
            try:
                self._launch(timeout)
                break
            except RuntimeError:
                if attempt == 2 or not _port_taken_by_someone_else(self.port, self._ever_started):
                    raise
                self.port = free_port()
        self._ever_started = True
        return self

    def _launch(self, timeout: float) -> None:
        argv = [
            self.binary,
            "--bind", HOST,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._pings():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server on port {self.port} exited with {self._proc.returncode}:\n"
                    + _tail(self.log)
                )
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(POLL)

    def stop(self, graceful: bool = True, timeout: float = STOP_TIMEOUT) -> None:
        """Stop it and wait until the port refuses connections.

        ``graceful``: ``SHUTDOWN NOSAVE`` (clients are disconnected cleanly; SIGTERM
        would do the same but only at the next server tick, ~100 ms later); otherwise
        SIGKILL, a crash. Either way the data is gone: there is no persistence.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if not graceful:
                proc.kill()
            else:
                try:
                    self._command(b"SHUTDOWN", b"NOSAVE")
                except OSError:
                    proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        _wait_refused(self.port, timeout, "redis-server")

    def restart(self, graceful: bool = True) -> Self:
        """``stop()`` then ``start()`` on the same port."""
        self.stop(graceful=graceful)
        return self.start()

    def ensure_running(self) -> Self:
        """Start it unless it already answers (e.g. a previous test stopped it)."""
        if not self.running:
            self.stop(graceful=False)
            self.start()
        return self

    def flushall(self) -> None:
        """Empty every database (a clean slate for the next test)."""
        reply = self._command(b"FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL on port {self.port} answered {reply!r}")

    def close(self) -> None:
        """Kill the server and remove its temp dir (idempotent; also runs at exit)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop(graceful=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _pings(self) -> bool:
        try:
            return self._command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def _command(self, *words: bytes) -> bytes:
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        with socket.create_connection((HOST, self.port), timeout=2.0) as sock:
            sock.sendall(request)
            return sock.recv(1024)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- PostgreSQL

StopMode = Literal["smart", "fast", "immediate"]
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def find_pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian), else ``initdb`` on PATH."""
    versions = Path("/usr/lib/postgresql")
    found: list[tuple[tuple[int, ...], Path]] = []
    if versions.is_dir():
        for child in versions.iterdir():
            if (child / "bin" / "initdb").exists() and re.fullmatch(r"\d+(\.\d+)*", child.name):
                found.append((tuple(int(p) for p in child.name.split(".")), child / "bin"))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of our own on a free 127.0.0.1 port.

    ``initdb`` runs once (trust auth, fsync off); ``stop()``/``start()`` act on the same
    data dir and port, so committed data survives a restart just as in a real outage.
    ``close()`` stops it and deletes the cluster.

    The postmaster is started and signalled the way ``pg_ctl start``/``pg_ctl stop -m``
    do it, but directly: it is our child process, so a failed start is seen at once and
    readiness (``postmaster.pid`` says "ready") is polled every 5 ms where ``pg_ctl -w``
    polls every 100 ms; a restart takes about a third of the time.
    """

    _SIGNALS: ClassVar[dict[str, signal.Signals]] = {
        "smart": signal.SIGTERM,
        "fast": signal.SIGINT,
        "immediate": signal.SIGQUIT,
    }

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_pg_bindir()
        if found is None:
            raise RuntimeError("no PostgreSQL binaries found")
        self.bindir = found
        self.port = free_port()
        self._user = _pg_os_user()
        self.dir = Path(tempfile.mkdtemp(prefix="tollway-pg-"))
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False
        self._ever_started = False
        self._closed = False
        atexit.register(self.close)

    @staticmethod
    def unavailable_reason(bindir: Path | None = None) -> str | None:
        """Why a private PostgreSQL cannot run here, or None when it can."""
        found = bindir or find_pg_bindir()
        if found is None:
            return "no PostgreSQL binaries (/usr/lib/postgresql/*/bin or initdb on PATH)"
        if os.geteuid() == 0 and _pg_os_user() is None:
            return "running as root but there is no 'postgres' OS user to run PostgreSQL as"
        for name in ("initdb", "postgres", "psql"):
            if not os.access(found / name, os.X_OK):
                return f"{found / name} is missing or not executable"
        return None

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        """Our postmaster is alive and says it is ready."""
        return self._proc is not None and self._proc.poll() is None and self._ready()

    def init(self) -> Self:
        """``initdb`` the cluster (once) and write the test settings."""
        if self._initialized:
            return self
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = dict(_PG_SETTINGS, unix_socket_directories=f"'{self.dir}'")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/services.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._initialized = True
        return self

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start (again) on ``self.port``; returns once it accepts connections."""
        if self._closed:
            raise RuntimeError("PrivatePostgres is closed")
        self.init()
        if self._proc is not None and self._proc.poll() is None:
            return self
        for attempt in range(3):
            try:
                self._launch(timeout)
                break
            except RuntimeError:
                if attempt == 2 or not _port_taken_by_someone_else(self.port, self._ever_started):
                    raise
                self.port = free_port()
        self._ever_started = True
        return self

    def _launch(self, timeout: float) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as_postgres(),
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"postgres on port {self.port} exited with {self._proc.returncode}:\n"
                    + _tail(self.log)
                )
            if time.monotonic() > deadline:
                self.stop("immediate")
                raise RuntimeError(f"postgres on port {self.port} was not ready in {timeout}s")
            time.sleep(POLL)

    def stop(self, mode: StopMode = "fast", timeout: float = STOP_TIMEOUT) -> None:
        """Stop it (``pg_ctl stop -m <mode>``) and wait until the port refuses connections.

        ``fast``: roll back open transactions, disconnect clients, clean shutdown.
        ``immediate``: a crash (no checkpoint; the next start runs crash recovery).
        ``smart``: wait for clients to disconnect first.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self._SIGNALS[mode])
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)
                proc.wait(timeout)
        _wait_refused(self.port, timeout, "postgres")

    def restart(self, mode: StopMode = "fast") -> Self:
        """``stop(mode)`` then ``start()`` on the same port."""
        self.stop(mode)
        return self.start()

    def ensure_running(self) -> Self:
        """Start it unless it is running (e.g. a previous test stopped it)."""
        if not self.running:
            self.stop("immediate")
            self.start()
        return self

    def create_database(self, name: str | None = None) -> str:
        """Create a database (default: a fresh unique name); returns its URL."""
        name = name or f"test_{secrets.token_hex(6)}"
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its clients."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql`` over TCP; returns its unaligned, tuples-only output."""
        result = self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", HOST, "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql,
        )  # fmt: skip
        return result.stdout.strip()

    def close(self) -> None:
        """Stop it (immediate) and delete the cluster (idempotent; also runs at exit)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _ready(self) -> bool:
        """``postmaster.pid`` line 8 says "ready" (what ``pg_ctl -w`` waits for)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _as_postgres(self) -> _RunAs:
        """``subprocess`` arguments that run a binary as the ``postgres`` user when root."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        if self._user is None:
            return {"cwd": self.dir, "env": env}
        env["HOME"] = self._user.pw_dir
        return {
            "cwd": self.dir,
            "env": env,
            "user": self._user.pw_uid,
            "group": self._user.pw_gid,
            "extra_groups": [],
        }

    def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary to completion; raise with its output when it fails."""
        result = subprocess.run(
            [str(self.bindir / binary), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
            **self._as_postgres(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{binary} failed ({result.returncode}): {result.stdout}{result.stderr}"
            )
        return result

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _RunAs(TypedDict, total=False):
    cwd: Path
    env: dict[str, str]
    user: int
    group: int
    extra_groups: list[int]


def _pg_os_user() -> pwd.struct_passwd | None:
    """The OS user to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def private_redis_server() -> Iterator[PrivateRedis]:
    """One private Redis per session (use ``private_redis`` in tests)."""
    reason = PrivateRedis.unavailable_reason()
    if reason is not None:
        require(f"private Redis unavailable: {reason}")
    server = PrivateRedis()
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.close()
        require(f"private Redis cannot start: {exc}")
    yield server
    server.close()


@pytest.fixture
def private_redis(private_redis_server: PrivateRedis) -> PrivateRedis:
    """The session's private Redis, running and empty at test start."""
    private_redis_server.ensure_running().flushall()
    return private_redis_server


@pytest.fixture(scope="session")
def private_postgres_server() -> Iterator[PrivatePostgres]:
    """One private PostgreSQL cluster per session (use ``private_postgres`` in tests)."""
    reason = PrivatePostgres.unavailable_reason()
    if reason is not None:
        require(f"private PostgreSQL unavailable: {reason}")
    server = PrivatePostgres()
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        server.close()
        require(f"private PostgreSQL cannot start: {exc}")
    yield server
    server.close()


@pytest.fixture
def private_postgres(private_postgres_server: PrivatePostgres) -> PrivatePostgres:
    """The session's private PostgreSQL, running at test start."""
    return private_postgres_server.ensure_running()


@contextlib.contextmanager
def stopped(server: PrivateRedis | PrivatePostgres) -> Iterator[None]:
    """Stop ``server`` for the ``with`` block and start it again afterwards."""
    server.stop()
    try:
        yield
    finally:
        server.start()


# ----------------------------------------------------------------- the shared servers

SHARED_PG = {"host": HOST, "port": 5432, "user": "postgres"}


def _shared_pg(statement: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database="test", timeout=5, **SHARED_PG)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def shared_postgres_database() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL (never stopped by a test); its URL.
    Dropped afterwards."""
    name = f"tollway_test_{secrets.token_hex(6)}"
    try:
        _shared_pg(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure means "not available"
        require(f"PostgreSQL at {HOST}:5432 (database 'test') is unreachable: {exc!r}")
    try:
        yield f"postgresql://postgres@{HOST}:5432/{name}"
    finally:
        with contextlib.suppress(Exception):
            _shared_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shared_pg_url() -> Iterator[str]:
    """A database of this test's own on the shared PostgreSQL."""
    with shared_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    """The shared Redis (tests use a key prefix of their own on it)."""
    import redis

    url = f"redis://{HOST}:6379/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        require(f"no Redis on {HOST}:6379 ({exc})")
    return url
