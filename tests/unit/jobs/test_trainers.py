"""The trainer as a child process: its output in the job's log, its own process group (a cancel
stops what it started too), its exit status as the job reads it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from app.jobs.trainers import launch_child

# A trainer that starts a grandchild, says both pids, then waits to be stopped.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("pids", child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_trainer_writes_its_log_and_returns_its_status(tmp_path: Path) -> None:
    log = tmp_path / "job.log"

    async def scenario() -> int:
        code = "import sys; print('hello from the trainer'); sys.exit(3)"
        trainer = await launch_child([sys.executable, "-c", code], log)
        return await trainer.wait()

    assert asyncio.run(scenario()) == 3
    assert log.read_text() == "hello from the trainer\n"


def test_terminating_a_trainer_stops_its_whole_process_group(tmp_path: Path) -> None:
    log = tmp_path / "job.log"

    async def scenario() -> tuple[int, int]:
        trainer = await launch_child([sys.executable, "-c", PARENT], log)
        deadline = time.monotonic() + 30
        while "pids" not in log.read_text():
            assert time.monotonic() < deadline, "the trainer never started its child"
            await asyncio.sleep(0.05)
        grandchild = int(log.read_text().split()[1])
        assert trainer.pid is not None and os.getpgid(trainer.pid) == trainer.pid
        trainer.terminate()
        return await asyncio.wait_for(trainer.wait(), 30), grandchild

    code, grandchild = asyncio.run(scenario())
    assert code == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while _alive(grandchild):  # it may linger a moment as a zombie of its dead parent
        assert time.monotonic() < deadline, "the trainer's own child outlived the cancel"
        time.sleep(0.05)
