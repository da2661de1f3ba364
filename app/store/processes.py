"""Which process holds something in a store shared by several (replicas, the CLI, trainers):
this process's identity, and whether another holder is still alive.

A holder on this host is alive while its pid runs with the same start time (pids are reused);
a holder on another host cannot be checked from here, so it holds for as long as its lease.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HOST: Final = socket.gethostname().replace("-", "_") or "host"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the process's start time on its host ("" where unknown)

    def alive_here(self) -> bool | None:
        """True/False for a process of this host; None for another host's (cannot tell)."""
        if self.host != HOST:
            return None
        return _running(self.pid) and (not self.started or _start_time(self.pid) == self.started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def me() -> Owner:
    return Owner(HOST, os.getpid(), _start_time(os.getpid()))


def pid_alive(pid: int) -> bool:
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); "" off Linux or when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]
