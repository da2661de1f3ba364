"""Background retrain jobs: one at a time, each a child process running ``python -m app.train``.

The child runs at a lower CPU priority than serving and dies with the server; its progress is
read back from the JSON-lines events it writes (``--progress-file``), never guessed.  Job records
live in ``<model_store>/jobs/<id>.json`` so they survive a restart; a job that was running when
the server died is reported as failed ("interrupted").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field

from app import atomic
from app.config import Settings

logger = logging.getLogger(__name__)

CHILD_NICENESS: Final = 10
POLL_S: Final = 0.5
CANCEL_GRACE_S: Final = 15
LOG_TAIL_LINES: Final = 40
INTERRUPTED: Final = "interrupted: the server stopped while this job was running"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})


class JobConflict(RuntimeError):
    """Another job is running (409)."""


class JobNotFound(LookupError):
    """No such job (404)."""


class Job(BaseModel):
    id: str
    state: JobState
    params: dict[str, Any]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    pid: int | None = None
    log_tail: list[str] = Field(default_factory=list)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class JobRunner:
    """Starts, watches, cancels and remembers retrain jobs."""

    def __init__(
        self,
        folder: Path,
        train_args: Callable[[dict[str, Any]], list[str]],
        on_success: Callable[[Job], Awaitable[None]],
    ) -> None:
        self.folder = folder
        self._train_args = train_args
        self._on_success = on_success
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._monitors: set[asyncio.Task[None]] = set()
        self._cancelling: set[str] = set()
        self._lock = asyncio.Lock()

    def _path(self, job_id: str, suffix: str) -> Path:
        return self.folder / f"{job_id}{suffix}"

    def recover(self) -> None:
        """At startup: jobs left running by a dead server are failed as interrupted."""
        for job in self.all():
            if job.state in ACTIVE:
                job.state, job.error, job.finished_at = JobState.FAILED, INTERRUPTED, _now()
                self._save(job)
                logger.warning("job %s was interrupted by a server restart", job.id)

    def all(self) -> list[Job]:
        if not self.folder.is_dir():
            return []
        jobs = [self._read(path) for path in self.folder.glob("*.json")]
        return sorted((j for j in jobs if j is not None), key=lambda j: j.created_at, reverse=True)

    def get(self, job_id: str) -> Job:
        job = self._read(self._path(job_id, ".json")) if _safe_id(job_id) else None
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        job.log_tail = self._log_tail(job.id)
        return job

    def _read(self, path: Path) -> Job | None:
        try:
            return Job.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _save(self, job: Job) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self._path(job.id, ".json"), job.model_dump_json(indent=2))

    def _log_tail(self, job_id: str) -> list[str]:
        try:
            lines = self._path(job_id, ".log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line.rstrip("\r") for line in lines.splitlines()[-LOG_TAIL_LINES:]]

    async def start(self, params: dict[str, Any]) -> Job:
        """Start a job, or raise JobConflict naming the one that runs."""
        async with self._lock:
            running = next((j for j in self.all() if j.state in ACTIVE), None)
            if running is not None:
                raise JobConflict(f"job {running.id} is {running.state}; one job runs at a time")
            job = Job(
                id=uuid.uuid4().hex[:12], state=JobState.QUEUED, params=params, created_at=_now()
            )
            self._save(job)
            process = await self._spawn(job)
            job.state, job.started_at, job.pid = JobState.RUNNING, _now(), process.pid
            self._save(job)
        monitor = asyncio.create_task(self._watch(job, process), name=f"job-{job.id}")
        self._monitors.add(monitor)
        monitor.add_done_callback(self._monitors.discard)
        return job

    async def _spawn(self, job: Job) -> asyncio.subprocess.Process:
        events = self._path(job.id, ".events.jsonl")
        command = [
            sys.executable,
            "-m",
            "app.train",
            *self._train_args(job.params),
            "--progress-file",
            str(events),
            "--nice",
            str(CHILD_NICENESS),
            "--die-with-parent",
        ]
        with self._path(job.id, ".log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._processes[job.id] = process
        logger.info("job %s started (pid %d)", job.id, process.pid)
        return process

    async def _watch(self, job: Job, process: asyncio.subprocess.Process) -> None:
        reader = _EventReader(self._path(job.id, ".events.jsonl"))
        while True:
            try:
                code: int | None = await asyncio.wait_for(process.wait(), POLL_S)
            except TimeoutError:
                code = None
            changed = reader.apply(job)
            if code is not None:
                break
            if changed:
                self._save(job)
        self._processes.pop(job.id, None)
        await self._finish(job, code, reader)

    async def _finish(self, job: Job, code: int, reader: _EventReader) -> None:
        if job.id in self._cancelling and reader.succeeded is None:
            job.state, job.error = JobState.CANCELLED, "cancelled by an operator"
        elif code == 0 and reader.succeeded is not None:
            job.result = reader.succeeded
            await self._on_success(job)  # the job is done once its version serves
            job.state = JobState.SUCCEEDED
            job.progress.update(phase="done", fraction=1.0)
        else:
            job.state = JobState.FAILED
            job.error = reader.failure or f"the trainer exited with status {code}"
        job.finished_at, job.pid = _now(), None
        self._cancelling.discard(job.id)
        self._save(job)
        logger.info("job %s %s", job.id, job.state)

    async def cancel(self, job_id: str) -> Job:
        """Stop a running job's trainer (SIGTERM, then SIGKILL); it publishes nothing."""
        job = self.get(job_id)
        process = self._processes.get(job_id)
        if job.state not in ACTIVE or process is None:
            raise JobConflict(f"job {job_id} is {job.state}, not running")
        self._cancelling.add(job_id)
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        return self.get(job_id)

    async def close(self) -> None:
        """Server shutdown: stop any trainer; its job is recorded as interrupted."""
        for job_id, process in list(self._processes.items()):
            self._cancelling.discard(job_id)
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), CANCEL_GRACE_S)
        for monitor in list(self._monitors):
            monitor.cancel()
        self.recover()


def retrain_arguments(settings: Settings, params: dict[str, Any]) -> list[str]:
    """The train CLI's arguments for a retrain job with ``params`` (see RetrainRequest)."""
    arguments = [
        "--model-store",
        str(settings.model_store),
        "--weights",
        settings.retrain_weights,
        "--epochs",
        str(params["epochs"]),
        "--fine-tune-epochs",
        str(params["fine_tune_epochs"]),
        "--learning-rate",
        str(params["learning_rate"]),
        "--validation-split",
        str(params["validation_split"]),
        "--seed",
        str(params["seed"]),
        "--activate",
        params["activate"],
    ]
    if settings.data_dir is not None:
        arguments += ["--data-dir", str(settings.data_dir)]
    if settings.feature_cache is not None:
        arguments += ["--feature-cache", str(settings.feature_cache)]
    return arguments


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _safe_id(job_id: str) -> bool:
    return job_id.isalnum() and len(job_id) <= 64


class _EventReader:
    """Reads the trainer's JSON-lines events incrementally and folds them into the job."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.succeeded: dict[str, Any] | None = None
        self.failure: str | None = None

    def apply(self, job: Job) -> bool:
        events = self._new_events()
        for event in events:
            _fold(job, event)
            if event.get("event") == "succeeded":
                self.succeeded = {k: v for k, v in event.items() if k not in ("event", "time")}
            elif event.get("event") == "failed":
                self.failure = str(event.get("error"))
        return bool(events)

    def _new_events(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a half-written last line waits for the next poll
        self.offset += len(complete)
        events = []
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events


def _fold(job: Job, event: dict[str, Any]) -> None:
    kind = event.get("event")
    progress = job.progress
    if kind == "phase":
        job.progress = {"phase": event.get("phase"), "detail": event.get("detail"), "fraction": 0.0}
    elif kind == "progress":
        progress.update(
            done=event.get("done"), total=event.get("total"), fraction=event.get("fraction")
        )
    elif kind == "epoch":
        epochs = int(event.get("epochs") or 1)
        progress.update(
            epoch=event.get("epoch"),
            epochs=epochs,
            metrics=event.get("metrics"),
            fraction=round(int(event.get("epoch") or 0) / epochs, 4),
        )
