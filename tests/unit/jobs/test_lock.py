"""The job lock on its own: one holder at a time across processes and hosts, a dead holder
replaced, a damaged lock file read as no holder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.jobs.lock import LEASE_S, JobLock, JobLocked
from app.store import processes


def _write_holder(
    lock: JobLock, host: str, pid: int, lease: float, started: str = "", job_id: str = "old"
) -> None:
    record = {"job_id": job_id, "host": host, "pid": pid, "started": started, "lease": lease}
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    lock.path.write_text(json.dumps(record))


def test_the_lock_names_its_holder_and_is_released_by_it_only(tmp_path: Path) -> None:
    lock = JobLock(tmp_path)
    assert lock.acquire("job1") is None
    holder = lock.holder()
    assert holder is not None and holder.job_id == "job1" and holder.owner == processes.me()
    assert holder.lease_until == pytest.approx(time.time() + LEASE_S, abs=5)
    lock.release("job2")  # not the holder: nothing happens
    assert lock.holder() is not None
    lock.release("job1")
    assert lock.holder() is None and not lock.path.exists()


def test_a_live_holder_refuses_another_job(tmp_path: Path) -> None:
    lock = JobLock(tmp_path)
    lock.acquire("job1")
    with pytest.raises(JobLocked, match=f"job job1 is running \\(pid {processes.me().pid}"):
        lock.acquire("job2")


def test_a_holder_whose_process_ended_is_replaced(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    ended = subprocess.run(command, check=True, capture_output=True, text=True)
    lock = JobLock(tmp_path)
    _write_holder(lock, processes.HOST, int(ended.stdout), time.time() + LEASE_S)
    replaced = lock.acquire("job2")
    assert replaced is not None and replaced.job_id == "old"
    assert lock.holder().job_id == "job2"  # type: ignore[union-attr]


def test_a_holder_on_another_host_holds_until_its_lease_expires(tmp_path: Path) -> None:
    lock = JobLock(tmp_path)
    _write_holder(lock, "another-host", 1, time.time() + 30)
    with pytest.raises(JobLocked, match="pid 1 on another-host"):
        lock.acquire("job2")
    _write_holder(lock, "another-host", 1, time.time() - 1)
    assert lock.acquire("job2") is not None


def test_renewing_extends_the_lease_of_the_holder_only(tmp_path: Path) -> None:
    lock = JobLock(tmp_path)
    me = processes.me()
    _write_holder(lock, me.host, me.pid, time.time() + 1, me.started, job_id="job1")
    lock.renew("job2")  # not the holder
    assert lock.holder().lease_until < time.time() + 2  # type: ignore[union-attr]
    lock.renew("job1")
    assert lock.holder().lease_until > time.time() + LEASE_S - 5  # type: ignore[union-attr]


@pytest.mark.parametrize("content", ["", "{", "[]", '{"job_id": "x"}', '{"lease": "soon"}'])
def test_a_damaged_lock_file_reads_as_no_holder(tmp_path: Path, content: str) -> None:
    lock = JobLock(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    lock.path.write_text(content)
    assert lock.holder() is None
    assert lock.acquire("job1") is None
