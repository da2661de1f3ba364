"""Retrain job records: ``<model_store>/jobs/<id>.json`` (plus the job's ``.log`` and
``.events.jsonl``), so a job's story survives a restart.

Every method here does blocking file I/O: the supervisor calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field

from app.events import Event, EventKind, Published
from app.store import atomic

LOG_TAIL_LINES: Final = 40
LOG_TAIL_BYTES: Final = 32 * 1024  # read from a log's end: 40 lines of up to 800 bytes
INTERRUPTED: Final = "interrupted: the server stopped while this job was running"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: Final = frozenset({JobState.QUEUED, JobState.RUNNING})


class JobNotFound(LookupError):
    """No such job (404)."""


class JobResult(Published):
    """What the job published, and whether this server could then serve it."""

    serving_error: str | None = None


class Job(BaseModel):
    id: str
    state: JobState
    params: dict[str, Any]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    result: JobResult | None = None
    error: str | None = None
    pid: int | None = None
    owner: str | None = Field(None, description="The server supervising the job (pid on host)")
    log_tail: list[str] = Field(default_factory=list)

    def apply(self, event: Event) -> None:
        """Fold one trainer event into the job's progress."""
        fields = event.fields
        if event.kind is EventKind.PHASE:
            detail = fields.get("detail")
            self.progress = {"phase": fields.get("phase"), "detail": detail, "fraction": 0.0}
        elif event.kind is EventKind.PROGRESS:
            self.progress.update(
                done=fields.get("done"), total=fields.get("total"), fraction=fields.get("fraction")
            )
        elif event.kind is EventKind.EPOCH:
            epochs = int(fields.get("epochs") or 1)
            self.progress.update(
                epoch=fields.get("epoch"),
                epochs=epochs,
                metrics=fields.get("metrics"),
                fraction=round(int(fields.get("epoch") or 0) / epochs, 4),
            )


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def safe_id(job_id: str) -> bool:
    return job_id.isalnum() and len(job_id) <= 64


class JobRecords:
    """The job files in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, job_id: str, suffix: str) -> Path:
        return self.folder / f"{job_id}{suffix}"

    def log_path(self, job_id: str) -> Path:
        return self.path(job_id, ".log")

    def events_path(self, job_id: str) -> Path:
        return self.path(job_id, ".events.jsonl")

    def all(self) -> list[Job]:
        """Every readable record, newest first, each with the last lines of its log."""
        jobs = self._records()
        for job in jobs:
            job.log_tail = self.log_tail(job.id)
        return jobs

    def active(self) -> Job | None:
        return next((job for job in self._records() if job.state in ACTIVE), None)

    def get(self, job_id: str) -> Job:
        """One record with the last lines of its log; JobNotFound when there is none."""
        job = self._read(self.path(job_id, ".json")) if safe_id(job_id) else None
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        job.log_tail = self.log_tail(job.id)
        return job

    def save(self, job: Job) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = job.model_copy(update={"log_tail": []})  # the log itself is the source
        atomic.write_text(self.path(job.id, ".json"), record.model_dump_json(indent=2))

    def fail_interrupted(self, alive: frozenset[str] = frozenset()) -> list[Job]:
        """Records left queued or running by a server that died (any active job not in
        ``alive``, the ones a live server still supervises): failed, as interrupted."""
        interrupted = []
        for job in self._records():
            if job.state in ACTIVE and job.id not in alive:
                job.state, job.error, job.finished_at, job.pid = (
                    JobState.FAILED,
                    INTERRUPTED,
                    now(),
                    None,
                )
                self.save(job)
                interrupted.append(job)
        return interrupted

    def log_tail(self, job_id: str) -> list[str]:
        """The log's last lines, read from its end (a long log costs no more than a short one)."""
        try:
            with self.log_path(job_id).open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - LOG_TAIL_BYTES))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        lines = text.splitlines()[1:] if size > LOG_TAIL_BYTES else text.splitlines()
        return [line.rstrip("\r") for line in lines[-LOG_TAIL_LINES:]]

    def _records(self) -> list[Job]:
        if not self.folder.is_dir():
            return []
        jobs = [self._read(path) for path in self.folder.glob("*.json")]
        return sorted((j for j in jobs if j is not None), key=lambda j: j.created_at, reverse=True)

    def _read(self, path: Path) -> Job | None:
        try:
            return Job.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
