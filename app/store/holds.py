"""Which versions processes are loading or serving, told to every process that shares the store:
one file each, ``<store>/.holds/<version>.<host>-<pid>-<random>``, so that a version is never
deleted (by an operator or by retention) while any replica loads, activates or serves it.

A hold of this host counts while its process runs; one of another host (whose processes cannot be
checked from here) while its file is younger than LEASE_S, which its holder renews every
RENEW_EVERY_S.  Holds of dead processes are ignored, and removed when seen.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Final

from app.store import processes

HOLDS_DIR: Final = ".holds"
LEASE_S: Final = 120.0
RENEW_EVERY_S: Final = 30.0


class Holds:
    def __init__(self, root: Path) -> None:
        self.folder = root / HOLDS_DIR

    def hold(self, number: int) -> Path:
        """Hold ``number`` until the returned file is released (blocking file I/O)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{number}.{processes.HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.touch()
        return path

    def release(self, hold: Path) -> None:
        hold.unlink(missing_ok=True)

    def renew(self, hold: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(hold)

    def held(self) -> set[int]:
        """The versions some live process holds."""
        if not self.folder.is_dir():
            return set()
        now = time.time()
        return {number for path in self.folder.iterdir() if (number := self._live(path, now))}

    def _live(self, path: Path, now: float) -> int | None:
        number, _, owner = path.name.partition(".")
        host, _, rest = owner.partition("-")
        pid = rest.split("-")[0]
        if not number.isdecimal():
            return None
        if host == processes.HOST and pid.isdecimal():
            if processes.pid_alive(int(pid)):
                return int(number)
            path.unlink(missing_ok=True)  # its process died holding it
            return None
        try:
            fresh = now - path.stat().st_mtime < LEASE_S
        except FileNotFoundError:
            return None
        return int(number) if fresh else None
