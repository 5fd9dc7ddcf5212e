"""Tollway through PgBouncer (Debian's package) in transaction pooling mode.

PgBouncer gets two server connections to the shared PostgreSQL for the test's database
and hands them to whichever client transaction comes next; ``tollway serve --workers 2``
in front of it keeps several client connections per worker, with
``database_pool.prepared_statements: false``. Migrations, keys, budgets (the Postgres
ledger: no Redis here), revocation and the spend report must all work as they do on a
direct connection. (With prepared statements on, the same calls fail with "prepared
statement ... does not exist" as soon as two transactions share a server connection.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml
from multihost_support import (
    CALL_COST_CENTS,
    CLAUDE,
    GPT,
    MASTER_KEY,
    PRICE,
    admin,
    cents,
    created,
    error_code,
    request_for,
)
from netlab import system_binary

from fake_upstream import FakeUpstream
from served import ServedGateway
from services import free_port, require, shared_postgres_database

SERVER_CONNECTIONS = 2  # PgBouncer's connections to PostgreSQL for the database

INI = """\
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 200
"""


class PgBouncer:
    """``pgbouncer`` in the foreground on a free port, as the ``postgres`` OS user when we
    are root (it refuses to run as root)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tollway-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        """Write the config and start; wait until it accepts connections."""
        (self.dir / "pgbouncer.ini").write_text(
            INI.format(port=self.port, dir=self.dir, pool=SERVER_CONNECTIONS)
        )
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if user is not None:
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        log = (self.dir / "pgbouncer.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, str(self.dir / "pgbouncer.ini")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on the admin console (simple queries only, so psql)."""
        console = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "pgbouncer"]
        result = subprocess.run(
            ["psql", "-X", "-A", "-F", "\t", "-P", "footer=off", *console, "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        header, *lines = result.stdout.rstrip("\n").split("\n")
        names = header.split("\t")
        return [dict(zip(names, line.split("\t"), strict=True)) for line in lines]

    def stop(self) -> None:
        """SIGINT: a safe shutdown (SIGTERM only stops once every client has left)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(2)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        """What it logged."""
        try:
            return (self.dir / "pgbouncer.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the shared PostgreSQL."""
    binary = system_binary("pgbouncer")
    if binary is None:
        require("pgbouncer is not installed (apt-get install pgbouncer)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require("running as root but there is no 'postgres' OS user to run pgbouncer as")
    bouncer = PgBouncer(binary).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def bounced(
    pgbouncer: PgBouncer, fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedGateway, str]]:
    """``tollway serve --workers 2`` on a fresh database, reached through PgBouncer only;
    and the database's name."""
    tmp = tmp_path_factory.mktemp("pgbouncer")
    upstream = fake_server.url
    with shared_postgres_database() as direct:
        database = direct.rsplit("/", 1)[1]
        config = {
            "master_key": MASTER_KEY,
            "data_dir": str(tmp / "data"),
            "database_url": f"postgresql://postgres@127.0.0.1:{pgbouncer.port}/{database}",
            "database_pool": {"size": 3, "max_overflow": 2, "prepared_statements": False},
            "log": {"level": "warning", "access": False},
            "retry": {"attempts": 0},
            "providers": {
                "oa": {"type": "openai", "base_url": upstream + "/v1", "api_key": "sk-up-1"},
                "an": {"type": "anthropic", "base_url": upstream, "api_key": "sk-up-2"},
            },
            "models": [
                {"name": GPT, "provider": "oa", "model": "mh-gpt-1", "price": PRICE},
                {"name": CLAUDE, "provider": "an", "model": "mh-claude-1", "price": PRICE},
            ],
        }
        path = tmp / "tollway.yaml"
        path.write_text(yaml.safe_dump(config))
        # Migrates first (through PgBouncer too). Slow to start on a busy machine.
        gateway = ServedGateway(path, tmp / "data", workers=2).start(timeout=120)
        yield gateway, database
        gateway.stop()


def call(url: str, index: int, secret: str) -> httpx.Response:
    """One call of the mix on a fresh connection."""
    path, body, headers = request_for(index, secret)
    with httpx.Client(base_url=url, timeout=20) as client:
        return client.post(path, json=body, headers=headers)


def test_tollway_through_pgbouncer_in_transaction_mode(
    bounced: tuple[ServedGateway, str], pgbouncer: PgBouncer, fake: FakeUpstream
) -> None:
    gateway, database = bounced
    cost = Decimal(CALL_COST_CENTS) / 100
    with admin(gateway.url) as api:
        budgeted = created(
            api.post(
                "/keys", json={"name": "bounced", "max_budget_usd": cents(5 * CALL_COST_CENTS)}
            )
        )
        revoked = created(api.post("/keys", json={"name": "revoked"}))

        # A budget of five calls, twenty at once over both workers: exactly five answered.
        with ThreadPoolExecutor(max_workers=20) as pool:
            calls = list(pool.map(lambda i: call(gateway.url, i, budgeted["key"]), range(20)))
        statuses = sorted(r.status_code for r in calls)
        assert statuses == [200] * 5 + [402] * 15, [r.text for r in calls if r.status_code != 402]
        assert {error_code(r) for r in calls if r.status_code == 402} == {
            "budget_exceeded",
            "billing_error",
        }
        assert len(fake.requests) == 5

        assert call(gateway.url, 0, revoked["key"]).status_code == 200
        assert api.delete(f"/keys/{revoked['id']}").status_code == 200
        assert error_code(call(gateway.url, 1, revoked["key"])) == "authentication_error"
        assert error_code(call(gateway.url, 0, revoked["key"])) == "invalid_api_key"

        deadline = time.monotonic() + 15
        while True:  # each worker flushes its own records; the other's within ~50 ms
            report = api.get("/spend", params={"key": budgeted["id"]}).json()["totals"]
            if report["requests"] == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert report["requests"] == 20 and Decimal(report["cost_usd"]) == 5 * cost
        shown = api.get(f"/keys/{budgeted['id']}").json()["spend_usd"]
        assert Decimal(shown["lifetime"]) == 5 * cost

    # Transaction pooling was in force: more client connections than server connections.
    clients = [c for c in pgbouncer.show("CLIENTS") if c["database"] == database]
    servers = [s for s in pgbouncer.show("SERVERS") if s["database"] == database]
    assert 0 < len(servers) <= SERVER_CONNECTIONS < len(clients), (clients, servers)
    assert {p["pool_mode"] for p in pgbouncer.show("POOLS") if p["database"] == database} == {
        "transaction"
    }
