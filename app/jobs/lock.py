"""One retrain job at a time across every server sharing a store: ``<store>/jobs/job.lock``.

The lock file names its holder (job id, host, pid, process start time) and a lease.  The holder
renews the lease while its job runs and removes the file when the job ends.  Another process may
take the lock over only when the holder is gone: on the same host, when its process no longer
runs; from another host (whose processes cannot be checked from here), when the lease expired.
Every read-check-write happens under an exclusive file lock, so two servers never both win.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from app.store import atomic, processes
from app.store.filelock import exclusive

LEASE_S: Final = 60.0
RENEW_EVERY_S: Final = 10.0


class JobLocked(RuntimeError):
    """Another live process holds the job lock."""


@dataclass(frozen=True)
class Holder:
    job_id: str
    owner: processes.Owner
    lease_until: float

    def alive(self, now: float) -> bool:
        here = self.owner.alive_here()
        return here if here is not None else now < self.lease_until

    def to_json(self) -> str:
        return json.dumps({"job_id": self.job_id, **asdict(self.owner), "lease": self.lease_until})


class JobLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "job.lock"
        self._guard = folder / ".job.lock.guard"

    def acquire(self, job_id: str) -> Holder | None:
        """Take the lock for ``job_id``; returns the dead holder it replaced (its job was
        interrupted), or raises JobLocked naming the live one."""
        with exclusive(self._guard):
            previous = self.holder()
            if previous is not None and previous.alive(time.time()):
                raise JobLocked(
                    f"job {previous.job_id} is running ({previous.owner}); one job runs at a time"
                )
            self._write(job_id)
        return previous

    def renew(self, job_id: str) -> None:
        with exclusive(self._guard):
            current = self.holder()
            if current is not None and current.job_id == job_id:
                self._write(job_id)

    def release(self, job_id: str) -> None:
        with exclusive(self._guard):
            current = self.holder()
            if current is not None and current.job_id == job_id:
                self.path.unlink(missing_ok=True)

    def holder(self) -> Holder | None:
        """The recorded holder; a damaged file reads as no holder."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            owner = processes.Owner(str(record["host"]), int(record["pid"]), str(record["started"]))
            return Holder(str(record["job_id"]), owner, float(record["lease"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write(self, job_id: str) -> None:
        holder = Holder(job_id, processes.me(), time.time() + LEASE_S)
        atomic.write_text(self.path, holder.to_json())
