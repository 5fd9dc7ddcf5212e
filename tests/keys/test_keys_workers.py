"""Revocation is exact across worker processes: ``tollway serve --workers 2``.

Every request goes over a new TCP connection, and the test finds out which worker
process accepted it (the server-side socket's inode, from ``/proc``), so it can insist
that both workers had the key warm in their caches before the change, and that both
refuse it afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from keys_support import GPT, MESSAGES, ServedGateway, launch, new_key, new_project, ok, unique

from fake_upstream import FakeUpstream

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to tell workers apart"
)
BODY = json.dumps({"model": GPT, "messages": MESSAGES, "max_tokens": 5}).encode()


@pytest.fixture(scope="module")
def wgw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """A two-worker gateway on SQLite."""
    gateway = launch(tmp_path_factory.mktemp("workers"), upstream_server, workers=2)
    yield gateway
    gateway.stop()


@pytest.fixture
def api(wgw: ServedGateway) -> Iterator[httpx.Client]:
    """The two-worker gateway's management API as the master key."""
    with wgw.admin() as client:
        yield client


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="utf-8") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def _owner(inode: str, pids: list[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


class Caller:
    """Proxy requests over fresh connections, noting which worker answered each."""

    def __init__(self, gateway: ServedGateway) -> None:
        assert gateway.process is not None
        self.gateway = gateway
        self.supervisor = gateway.process.pid
        self.pids = [pid for pid in _descendants(self.supervisor) if pid != self.supervisor]

    def call(self, key: str) -> tuple[int, int | None]:
        """(status, worker pid) for one chat completion on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        try:
            conn.request(
                "POST",
                "/v1/chat/completions",
                body=BODY,
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            assert conn.sock is not None
            inode = _socket_inode(self.gateway.port, conn.sock.getsockname()[1])
            worker = _owner(inode, self.pids) if inode else None
            return response.status, worker
        finally:
            conn.close()

    def until_both(
        self, key: str, minimum: int, each: int, cap: int = 400
    ) -> tuple[Counter[int], Counter[int | None]]:
        """Call until both workers answered ``each`` times and ``minimum`` calls were made.

        Returns (statuses, answers per worker)."""
        statuses: Counter[int] = Counter()
        workers: Counter[int | None] = Counter()
        for made in range(1, cap + 1):
            status, worker = self.call(key)
            statuses[status] += 1
            workers[worker] += 1
            served = [count for pid, count in workers.items() if pid is not None]
            if made >= minimum and len(served) >= 2 and min(served) >= each:
                break
        return statuses, workers


@pytest.fixture
def caller(wgw: ServedGateway) -> Caller:
    """The request maker for the two-worker gateway."""
    found = Caller(wgw)
    assert len(found.pids) >= 2, f"expected two worker processes, found {found.pids}"
    return found


def _assert_both_workers(workers: Counter[int | None]) -> None:
    served = {pid: count for pid, count in workers.items() if pid is not None}
    assert len(served) >= 2, f"the requests did not reach both workers: {dict(workers)}"


def test_revocation_reaches_every_worker(api: httpx.Client, caller: Caller) -> None:
    body = new_key(api, name=unique("two-workers"))
    before, workers = caller.until_both(body["key"], minimum=20, each=5)
    assert before == Counter({200: sum(before.values())}), before
    _assert_both_workers(workers)

    ok(api.delete(f"/keys/{body['id']}"))

    after, workers = caller.until_both(body["key"], minimum=50, each=10)
    assert after == Counter({401: sum(after.values())}), f"a revoked key was served: {after}"
    _assert_both_workers(workers)


def test_deactivation_and_reactivation_reach_every_worker(
    api: httpx.Client, caller: Caller
) -> None:
    project = new_project(api, unique("workers"))
    body = new_key(api, project=project["name"])
    warm, workers = caller.until_both(body["key"], minimum=10, each=3)
    assert set(warm) == {200}
    _assert_both_workers(workers)

    ok(api.patch(f"/keys/{body['id']}", json={"active": False}))
    off, workers = caller.until_both(body["key"], minimum=20, each=5)
    assert set(off) == {401}, off
    _assert_both_workers(workers)

    ok(api.patch(f"/keys/{body['id']}", json={"active": True}))
    on, _ = caller.until_both(body["key"], minimum=10, each=3)
    assert set(on) == {200}, on

    ok(api.patch(f"/projects/{project['id']}", json={"active": False}))
    blocked, workers = caller.until_both(body["key"], minimum=20, each=5)
    assert set(blocked) == {401}, blocked
    _assert_both_workers(workers)

    ok(api.post(f"/projects/{project['id']}/revoke-keys"))
    ok(api.patch(f"/projects/{project['id']}", json={"active": True}))
    revoked, _ = caller.until_both(body["key"], minimum=20, each=5)
    assert set(revoked) == {401}, revoked


def test_max_requests_is_exact_across_workers(wgw: ServedGateway, api: httpx.Client) -> None:
    body = new_key(api, name=unique("quota"), max_requests=10)

    def one(_: int) -> int:
        with httpx.Client(timeout=10) as client:  # a fresh connection per request
            response = client.post(
                wgw.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {body['key']}"},
                content=BODY,
            )
            return response.status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = Counter(pool.map(one, range(30)))
    assert statuses == Counter({200: 10, 403: 20}), statuses
    assert ok(api.get(f"/keys/{body['id']}"))["request_count"] == 10


def test_concurrent_admin_writes_keep_the_audit_chain(wgw: ServedGateway) -> None:
    def write(index: int) -> int:
        with wgw.admin() as client:  # a fresh connection per request
            if index % 3 == 0:
                response = client.patch("/projects/default", json={"metadata": {"i": index}})
            else:
                response = client.post("/keys", json={"name": f"concurrent {index}"})
            return response.status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = Counter(pool.map(write, range(45)))
    assert statuses == Counter({201: 30, 200: 15}), statuses
    with wgw.admin() as client:
        result = ok(client.get("/audit/verify"))
        entries = ok(client.get("/audit", params={"limit": 1000}))
    assert result["ok"] is True, result
    assert sorted(entry["seq"] for entry in entries) == list(range(1, result["entries"] + 1))
