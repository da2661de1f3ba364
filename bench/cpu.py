"""Where the cores go: CPU seconds by thread of a process, of the machine and of this process.

py-spy's samples count a thread that waits for a core as busy; the kernel's counters do not.
Reading ``/proc`` before and after a load shows what each thread of the server really ran
(the engine's own threads, the decode pool, the event loop), what the load generator took from
the same cores, and what stayed idle; and, from each thread's scheduler counters
(``/proc/<pid>/task/<tid>/schedstat``), how long it ran, how long it was ready to run but waited
for a core, and how long it slept (on a lock, a condition, I/O: for work or for another thread).
Linux only.
"""

from __future__ import annotations

import os
import re
import resource
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# py-spy dump's thread lines: 'Thread 12345 (active): "decode_0"' (the native id, its name)
_DUMPED = re.compile(r'^Thread (?P<tid>\d+) \([^)]*\): "(?P<name>[^"]*)"', re.M)
ENGINE_THREADS = "native (the engine's own)"


@dataclass(frozen=True)
class Snapshot:
    threads: dict[int, float]  # thread id -> CPU seconds so far
    machine: dict[str, float]  # /proc/stat's first line: user, system, idle, steal... (seconds)
    own: float  # this process's CPU seconds (the load generator's)
    # thread id -> (seconds on a core, seconds ready but waiting for one), where the kernel keeps
    # them (schedstat)
    scheduled: dict[int, tuple[float, float]] = field(default_factory=dict)


def snapshot(pid: int) -> Snapshot:
    return Snapshot(thread_seconds(pid), machine_seconds(), own_seconds(), scheduled_seconds(pid))


def _each_thread(pid: int, file: str) -> Iterator[tuple[int, str]]:
    """(thread id, text of ``/proc/<pid>/task/<tid>/<file>``) for each live thread of ``pid`` (a
    thread that ended between two snapshots is missing from the later one: pools' threads live as
    long as the server; so is every thread where the kernel does not keep the file)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            yield int(task.name), (task / file).read_text()
        except OSError:
            continue


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of ``pid``."""
    out = {}
    for tid, stat in _each_thread(pid, "stat"):
        fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
        out[tid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def scheduled_seconds(pid: int) -> dict[int, tuple[float, float]]:
    """Seconds each live thread of ``pid`` has run on a core and has waited on a run queue (ready,
    no core free), from ``schedstat`` (nanoseconds); empty where the kernel does not keep it."""
    out = {}
    for tid, schedstat in _each_thread(pid, "schedstat"):
        running, waiting, _ = schedstat.split()
        out[tid] = (int(running) / 1e9, int(waiting) / 1e9)
    return out


def machine_seconds() -> dict[str, float]:
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return {name: int(value) / _TICK for name, value in zip(names, values, strict=False)}


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_names(py_spy_dump: str) -> dict[int, str]:
    """Python thread names by native thread id, from ``py-spy dump --pid``'s output."""
    return {int(m["tid"]): m["name"] for m in _DUMPED.finditer(py_spy_dump)}


def group(name: str) -> str:
    """A pool's threads as one line: ``decode_0`` and ``decode_1`` are ``decode``."""
    return re.sub(r"_\d+$", "", name)


def split(
    before: Snapshot, after: Snapshot, seconds: float, images: int, names: dict[int, str]
) -> str:
    """A table of where the cores went between two snapshots: each thread group of the server
    (threads py-spy does not name are the engine's own, e.g. OpenVINO's streams), the load
    generator, and what the machine left idle; in CPU seconds, ms per image and cores."""
    by_group: Counter[str] = Counter()
    for tid, spent in after.threads.items():
        by_group[group(names.get(tid, ENGINE_THREADS))] += spent - before.threads.get(tid, 0.0)
    server = sum(by_group.values())
    machine = {k: after.machine[k] - before.machine.get(k, 0.0) for k in after.machine}
    rows = [(f"server: {name}", spent) for name, spent in by_group.most_common() if spent > 0]
    busy = sum(machine.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
    generator = after.own - before.own
    rows += [
        ("server, all threads", server),
        ("load generator (this process)", generator),
        ("anything else (py-spy, other processes)", max(busy - server - generator, 0.0)),
        ("idle (the machine)", machine.get("idle", 0.0) + machine.get("iowait", 0.0)),
        ("stolen by the hypervisor", machine.get("steal", 0.0)),
    ]
    per_image = lambda spent: f"{1000 * spent / images:.2f}" if images else "-"  # noqa: E731
    lines = [
        f"{images} images in {seconds:.1f} s on {os.cpu_count()} cores",
        "",
        "| where the cores went | CPU s | ms per image | cores |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {spent:.2f} | {per_image(spent)} | {spent / seconds:.2f} |"
        for name, spent in rows
    ]
    return "\n".join(lines)


def states(before: Snapshot, after: Snapshot, seconds: float, names: dict[int, str]) -> str:
    """A table of each busy thread's time between two snapshots, as shares of the wall time: on a
    core, ready but waiting for a core, and asleep (the rest: waiting for work, a lock, another
    thread). Threads that neither ran nor waited for 1% of the time are left out."""
    rows = []
    for tid, (ran, waited) in after.scheduled.items():
        ran_before, waited_before = before.scheduled.get(tid, (0.0, 0.0))
        running, waiting = (ran - ran_before) / seconds, (waited - waited_before) / seconds
        if running >= 0.01 or waiting >= 0.01:
            rows.append((names.get(tid, ENGINE_THREADS), tid, running, waiting))
    if not rows:
        return "no scheduler counters (/proc/<pid>/task/<tid>/schedstat) for this server"
    lines = [
        "| thread | on a core | ready, waiting for a core | asleep |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} ({tid}) | {running:.2f} | {waiting:.2f} | {max(1 - running - waiting, 0):.2f} |"
        for name, tid, running, waiting in sorted(rows)  # by name, then thread id
    ]
    return "\n".join(lines)
