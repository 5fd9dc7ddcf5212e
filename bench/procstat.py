"""What a process tree used, read from /proc: CPU time, resident and private memory.

CPU per request is a delta of ``sample(pid).cpu_s`` over a load run divided by the
requests it completed; ``CpuCounters`` compares the whole machine's CPU use with the
benchmark's own to tell when something else was running.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process and all its descendants."""

    cpu_s: float  # utime+stime (+ reaped children) of the whole tree
    rss_mb: float  # VmRSS summed over the tree
    hwm_mb: float  # VmHWM (peak RSS) summed over the tree
    uss_mb: float  # private memory (Private_Clean + Private_Dirty): shared with no one
    processes: int
    threads: int


def _stat_fields(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data.rsplit(")", 1)[1].split()  # fields after "(comm)": state is index 0


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time of one process (not its tree): cheap enough to read around every run."""
    fields = _stat_fields(pid)
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def sample(root: int) -> ProcSample:
    """CPU and memory of ``root``'s process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = rss = hwm = uss = 0.0
    threads = 0
    pids = descendants(root)
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            cpu += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "VmRSS":
                    rss += int(value.split()[0]) / 1024
                elif key == "VmHWM":
                    hwm += int(value.split()[0]) / 1024
                elif key == "Threads":
                    threads += int(value)
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    uss += int(value.split()[0]) / 1024
    return ProcSample(cpu, rss, hwm, uss, len(pids), threads)


def maps_file(pid: int, fragment: str) -> bool:
    """Whether a file whose path holds ``fragment`` is mapped into the process (a
    native library that was imported, say)."""
    with contextlib.suppress(OSError):
        return fragment in Path(f"/proc/{pid}/maps").read_text()
    return False


@dataclass(frozen=True)
class CpuCounters:
    """Machine-wide busy and steal time (/proc/stat) and this driver's own CPU (incl. wrk)."""

    at: float
    busy_s: float
    steal_s: float
    driver_s: float

    @staticmethod
    def now() -> CpuCounters:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # irq/softirq time is left out: with IRQ time accounting it is charged to no process,
        # and loopback traffic makes plenty of it.
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields[:8]
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: wrk runs
        driver = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return CpuCounters(time.monotonic(), (user + nice + system) / ticks, steal / ticks, driver)


def machine_busy(seconds: float) -> float:
    """Fraction of all CPUs busy over the next ``seconds``."""
    before = CpuCounters.now()
    time.sleep(seconds)
    after = CpuCounters.now()
    return (after.busy_s - before.busy_s) / ((after.at - before.at) * (os.cpu_count() or 1))


def wait_idle(
    pid: int, *, busy_below: float = 0.05, window_s: float = 0.5, limit_s: float = 60
) -> float:
    """Wait until ``pid`` uses less than ``busy_below`` of a core over ``window_s`` (work
    left over from a load run, such as a tokenizer loading, is done); returns the seconds
    waited, at most ``limit_s``."""
    start = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - start < limit_s:
        time.sleep(window_s)
        now = cpu_seconds(pid)
        if now - before < busy_below * window_s:
            break
        before = now
    return time.monotonic() - start
