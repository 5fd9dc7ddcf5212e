"""Test hosts on this machine: network namespaces joined to the root namespace by veth
pairs, and a TCP relay that lets them reach services on the root namespace's loopback.

Each host is a namespace of its own (``ip netns add``) with one veth pair: the host's end
(``eth0``) and the root namespace's end each get an address on a /30 of their own, so
the root namespace reaches every host and every host reaches the root namespace at its
``gateway`` address. A process in a namespace cannot reach the root namespace's
127.0.0.1, where the shared PostgreSQL and Redis and the fake upstream listen; a
``Relay`` listens on each host's gateway address instead and forwards to 127.0.0.1, which
is what a database on another machine looks like to the host (the shared services keep
their configuration).

Names carry this process's id (``tw<pid><label>``), so concurrent runs do not collide and
namespaces left behind by a run that was killed are removed by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
_OURS = re.compile(r"^tw(\d+)[a-z]$")
_BLOCK = ipaddress.IPv4Network("10.213.0.0/16")  # /24s drawn from here, one per run


def system_binary(name: str) -> str | None:
    """Where ``name`` is: on PATH, or in the system folders a user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its output when it fails and ``check`` is set."""
    command = [system_binary("ip") or "ip", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if system_binary("ip") is None:
        return "the ip command (Debian's iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"tw{os.getpid()}z"
    try:
        ip("netns", "add", probe)
        ip("link", "add", f"{probe}0", "type", "veth", "peer", "name", "eth0", "netns", probe)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"cannot create a network namespace with a veth pair: {exc}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def remove_stale() -> None:
    """Delete the namespaces of runs whose process is gone, with the gateways such a run
    left running in them (they were in sessions of their own, so they outlived it)."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        found = _OURS.match(entry.name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            for pid in ip("netns", "pids", entry.name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", entry.name, check=False)


def _free_block() -> ipaddress.IPv4Network:
    """A /24 of ``_BLOCK`` that no interface or route here uses yet."""
    used = ip("-4", "-o", "addr", "show").stdout + ip("-4", "route", "show").stdout
    blocks = list(_BLOCK.subnets(new_prefix=24))
    random.shuffle(blocks)
    for block in blocks:
        prefix = ".".join(str(block.network_address).split(".")[:3]) + "."
        if prefix not in used:
            return block
    raise RuntimeError(f"no free /24 left in {_BLOCK}")


@dataclass(frozen=True)
class Host:
    """One namespace: its name, its address, and the root namespace's address on its link."""

    label: str
    netns: str
    address: str
    gateway: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return [system_binary("ip") or "ip", "netns", "exec", self.netns, *argv]


class Network:
    """Hosts labelled ``a``, ``b``, ... each in its own namespace; ``close()`` removes them
    (their veth pairs go with them)."""

    def __init__(self, labels: Sequence[str]) -> None:
        remove_stale()
        block = _free_block()
        base = int(block.network_address)
        self.hosts: dict[str, Host] = {}
        try:
            for index, label in enumerate(labels):
                netns = f"tw{os.getpid()}{label}"
                root_end = str(ipaddress.IPv4Address(base + 4 * index + 1))
                host_end = str(ipaddress.IPv4Address(base + 4 * index + 2))
                ip("netns", "add", netns)
                self.hosts[label] = Host(label, netns, host_end, root_end)
                link = f"{netns}0"  # at most 15 characters: tw + pid (<= 7 digits) + 2
                ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
                ip("addr", "add", f"{root_end}/30", "dev", link)
                ip("link", "set", link, "up")
                ip("-n", netns, "addr", "add", f"{host_end}/30", "dev", "eth0")
                ip("-n", netns, "link", "set", "eth0", "up")
                ip("-n", netns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Delete every namespace (processes still inside must be stopped first)."""
        for host in self.hosts.values():
            ip("netns", "del", host.netns, check=False)
        self.hosts = {}


class Relay:
    """TCP forwarding in the root namespace, on an event loop of its own in a thread:
    ``listen(address, port, target)`` accepts on ``address:port`` and connects each
    connection to ``127.0.0.1:target``, both ways, until either side closes."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._thread.start()

    def listen(self, address: str, port: int, target: int) -> None:
        """Forward ``address:port`` to ``127.0.0.1:target``."""

        async def start() -> asyncio.Server:
            return await asyncio.start_server(
                lambda r, w: self._connect(r, w, target), address, port, reuse_address=True
            )

        future = asyncio.run_coroutine_threadsafe(start(), self._loop)
        self._servers.append(future.result(10))

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def close(self) -> None:
        """Stop listening, drop every relayed connection and end the thread."""

        async def stop() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file or an error, then close the writing side: a peer that went
    away (a killed gateway) takes its relayed connection with it."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
