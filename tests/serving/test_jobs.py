"""The retrain job supervisor with a fake trainer (a few lines of Python that write events)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from app.events import Published
from app.options import TrainOptions
from app.serving.job_records import Job, JobRecords, JobState
from app.serving.jobs import JobConflict, JobRunner

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


FILE_IO = frozenset({"all", "active", "get", "save", "fail_interrupted", "log_tail"})


class OffLoopRecords(JobRecords):
    """Job records that note every file operation called on the event loop's thread."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.calls_on_loop: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name not in FILE_IO:
            return attribute
        calls = super().__getattribute__("calls_on_loop")

        def checked(*args: Any, **kwargs: Any) -> Any:
            if _on_event_loop():
                calls.append(name)
            return attribute(*args, **kwargs)

        return checked


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

    records = OffLoopRecords(tmp_path / "jobs")
    runner = JobRunner(records, _command(0, pause_s=0.4), on_published)  # polled mid-run
    job = asyncio.run(_run_job(runner))
    assert job.state is JobState.SUCCEEDED
    assert job.result is not None and job.result.version == 7 and job.result.serving_error is None
    assert served == [
        Published(version=7, activated=True, reason="activate=always", val_accuracy=0.9)
    ]
    assert job.progress == {"phase": "done", "detail": "published version 7", "fraction": 1.0}
    assert "log line from the trainer" in job.log_tail
    assert records.calls_on_loop == []  # records are read and written in worker threads only


def test_a_failed_job_keeps_the_trainers_reason(tmp_path: Path) -> None:
    async def never(published: Published) -> None:
        raise AssertionError("nothing was published")

    job = asyncio.run(_run_job(JobRunner(JobRecords(tmp_path), _command(2), never)))
    assert job.state is JobState.FAILED and job.error == "the data folder is empty"
    assert job.progress["epoch"] == 2 and job.progress["fraction"] == 1.0


def test_a_version_that_cannot_serve_is_reported_on_the_job(tmp_path: Path) -> None:
    async def broken(published: Published) -> None:
        raise RuntimeError("version 7 could not be loaded: bad file")

    job = asyncio.run(_run_job(JobRunner(JobRecords(tmp_path), _command(0), broken)))
    assert job.state is JobState.SUCCEEDED
    assert (
        job.result is not None
        and job.result.serving_error == "version 7 could not be loaded: bad file"
    )


def test_one_job_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async def ignore(published: Published) -> None: ...

        runner = JobRunner(JobRecords(tmp_path), _command(0, pause_s=1.0), ignore)
        first = await runner.start(TrainOptions())
        with pytest.raises(JobConflict, match=first.id):
            await runner.start(TrainOptions())
        cancelled = await runner.cancel(first.id)
        assert cancelled.state is JobState.CANCELLED

    asyncio.run(scenario())
