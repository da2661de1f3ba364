"""The retrain job supervisor with a fake trainer (a few lines of Python that write events)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.events import Published
from app.jobs.records import Job, JobRecords, JobState
from app.jobs.runner import JobConflict, JobRunner
from app.options import TrainOptions
from app.store import processes
from app.store.versions import ModelStore
from tests.conftest import REPO

# Writes the events a real trainer writes (to the file after --progress-file), then exits with
# the status given as its first argument.
FAKE_TRAINER = """
import json, sys, time
path = sys.argv[sys.argv.index("--progress-file") + 1]
def event(kind, **fields):
    with open(path, "a") as out:
        out.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\\n")
event("phase", phase="train_head", detail="2 epochs")
for epoch in (1, 2):
    event("epoch", phase="head", epoch=epoch, epochs=2, metrics={"accuracy": 0.5 * epoch})
    time.sleep(float(sys.argv[2]))
print("log line from the trainer", flush=True)
if sys.argv[1] == "0":
    event("succeeded", version=7, activated=True, reason="activate=always", val_accuracy=0.9)
else:
    event("failed", error="the data folder is empty")
sys.exit(int(sys.argv[1]))
"""


def _command(status: int, pause_s: float = 0.05) -> Any:
    return lambda recipe: [sys.executable, "-c", FAKE_TRAINER, str(status), str(pause_s)]


class OffLoop:
    """A proxy noting every call of ``methods`` made on the event loop's thread (blocking I/O)."""

    def __init__(self, target: Any, methods: frozenset[str], calls: list[str]) -> None:
        self._target, self._methods, self._calls = target, methods, calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name not in self._methods:
            return attribute

        def checked(*args: Any, **kwargs: Any) -> Any:
            if _on_event_loop():
                self._calls.append(name)
            return attribute(*args, **kwargs)

        return checked


RECORD_IO = frozenset({"all", "active", "get", "save", "fail_interrupted", "log_tail"})
LOCK_IO = frozenset({"acquire", "renew", "release", "holder"})


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _run_job(runner: JobRunner) -> Job:
    job = await runner.start(TrainOptions())
    for _ in range(600):
        job = await asyncio.to_thread(runner.records.get, job.id)
        if job.state is not JobState.RUNNING:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job did not finish: {job}")


def test_a_successful_job_is_served_and_recorded_without_blocking_the_loop(tmp_path: Path) -> None:
    served: list[Published] = []

    async def on_published(published: Published) -> None:
        served.append(published)

    runner = JobRunner(ModelStore(tmp_path), _command(0, pause_s=0.4), on_published)
    calls_on_loop: list[str] = []
    runner.records = OffLoop(runner.records, RECORD_IO, calls_on_loop)  # type: ignore[assignment]
    runner.lock = OffLoop(runner.lock, LOCK_IO, calls_on_loop)  # type: ignore[assignment]
    job = asyncio.run(_run_job(runner))
    assert job.state is JobState.SUCCEEDED
    assert job.result is not None and job.result.version == 7 and job.result.serving_error is None
    assert served == [
        Published(version=7, activated=True, reason="activate=always", val_accuracy=0.9)
    ]
    assert job.progress == {
        "phase": "done",
        "detail": "published version 7",
        "fraction": 1.0,
        "overall": 1.0,
    }
    assert "log line from the trainer" in job.log_tail
    assert calls_on_loop == []  # records and the lock are used in worker threads only


def test_a_failed_job_keeps_the_trainers_reason(tmp_path: Path) -> None:
    async def never(published: Published) -> None:
        raise AssertionError("nothing was published")

    job = asyncio.run(_run_job(JobRunner(ModelStore(tmp_path), _command(2), never)))
    assert job.state is JobState.FAILED and job.error == "the data folder is empty"
    assert job.progress["epoch"] == 2 and job.progress["fraction"] == 1.0


def test_a_version_that_cannot_serve_is_reported_on_the_job(tmp_path: Path) -> None:
    async def broken(published: Published) -> None:
        raise RuntimeError("version 7 could not be loaded: bad file")

    job = asyncio.run(_run_job(JobRunner(ModelStore(tmp_path), _command(0), broken)))
    assert job.state is JobState.SUCCEEDED
    assert (
        job.result is not None
        and job.result.serving_error == "version 7 could not be loaded: bad file"
    )


def test_one_job_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async def ignore(published: Published) -> None: ...

        runner = JobRunner(ModelStore(tmp_path), _command(0, pause_s=1.0), ignore)
        first = await runner.start(TrainOptions())
        with pytest.raises(JobConflict, match=first.id):
            await runner.start(TrainOptions())
        cancelled = await runner.cancel(first.id)
        assert cancelled.state is JobState.CANCELLED

    asyncio.run(scenario())


# A second server process sharing the store: it starts a slow job and holds it until killed.
OTHER_SERVER = """
import asyncio, sys
from app.options import TrainOptions
from app.jobs.runner import JobRunner
from app.store.versions import ModelStore
from tests.conftest import REPO
from pathlib import Path

async def main():
    async def ignore(published): ...
    trainer = [sys.executable, "-c", sys.argv[2], "0", "30"]
    runner = JobRunner(ModelStore(Path(sys.argv[1])), lambda recipe: trainer, ignore)
    job = await runner.start(TrainOptions())
    print(job.id, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_replicas_sharing_a_store_run_one_job_between_them(tmp_path: Path) -> None:
    command = [sys.executable, "-c", OTHER_SERVER, str(tmp_path), FAKE_TRAINER]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO) as other:
        try:
            assert other.stdout is not None
            theirs = other.stdout.readline().strip()

            async def scenario() -> None:
                async def ignore(published: Published) -> None: ...

                mine = JobRunner(ModelStore(tmp_path), _command(0), ignore)
                await mine.recover()  # a second replica starting up
                with pytest.raises(JobConflict, match=theirs):
                    await mine.start(TrainOptions())

            asyncio.run(scenario())
            record = JobRecords(tmp_path / "jobs").get(theirs)
            assert record.state is JobState.RUNNING and record.error is None
        finally:
            other.kill()


def test_a_dead_servers_lock_is_taken_over_and_its_job_failed_as_interrupted(
    tmp_path: Path,
) -> None:
    records = JobRecords(tmp_path / "jobs")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    records.save(Job(id="abandoned", state=JobState.RUNNING, params={}, created_at="2026"))
    holder = {
        "job_id": "abandoned",
        "host": processes.HOST,
        "pid": int(dead),
        "started": "1",
        "lease": time.time() + 600,
    }
    (tmp_path / "jobs" / "job.lock").write_text(json.dumps(holder))

    async def ignore(published: Published) -> None: ...

    job = asyncio.run(_run_job(JobRunner(ModelStore(tmp_path), _command(0), ignore)))
    assert job.state is JobState.SUCCEEDED
    abandoned = records.get("abandoned")
    assert abandoned.state is JobState.FAILED and abandoned.error.startswith("interrupted")  # type: ignore[union-attr]
    assert not (tmp_path / "jobs" / "job.lock").exists()  # released when the job ended


# A trainer that, like app.train, holds off SIGTERM while it publishes and reports.
PUBLISHING_TRAINER = """
import json, signal, sys, time
path = sys.argv[sys.argv.index("--progress-file") + 1]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
print("publishing", flush=True)
time.sleep(1.0)
with open(path, "a") as out:
    out.write(json.dumps({"event": "succeeded", "version": 4, "activated": True,
                          "reason": "activate=always", "val_accuracy": 0.9}) + "\\n")
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
time.sleep(5)
"""


def test_a_cancel_that_comes_while_publishing_is_refused_and_the_record_says_published(
    tmp_path: Path,
) -> None:
    async def scenario() -> Job:
        async def ignore(published: Published) -> None: ...

        trainer = [sys.executable, "-c", PUBLISHING_TRAINER]
        runner = JobRunner(ModelStore(tmp_path), lambda recipe: trainer, ignore)
        job = await runner.start(TrainOptions())
        for _ in range(400):  # until the trainer says it is publishing
            if "publishing" in await asyncio.to_thread(runner.records.log_tail, job.id):
                break
            await asyncio.sleep(0.05)
        with pytest.raises(JobConflict, match=r"could not be cancelled.*version 4 is published"):
            await runner.cancel(job.id)
        return await asyncio.to_thread(runner.records.get, job.id)

    job = asyncio.run(scenario())
    assert job.state is JobState.SUCCEEDED and job.result is not None and job.result.version == 4
    assert "the cancel came after publishing had begun" in job.progress["detail"]


def test_a_trainer_killed_after_publishing_leaves_a_record_that_names_its_version(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path)
    killed_after_publish = (
        "import sys, os, signal\n"
        "from tests.support.modelfactory import publish_tiny\n"
        "from app.store.versions import ModelStore\n"
        "job = sys.argv[sys.argv.index('--job-id') + 1]\n"
        "publish_tiny(ModelStore(sys.argv[1]), ['a', 'b'], job_id=job)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )

    async def ignore(published: Published) -> None: ...

    trainer = [sys.executable, "-c", killed_after_publish, str(tmp_path)]
    job = asyncio.run(_run_job(JobRunner(store, lambda recipe: trainer, ignore)))
    assert job.state is JobState.SUCCEEDED and job.result is not None
    assert job.result.version == 1 and "stopped after publishing" in job.result.reason
