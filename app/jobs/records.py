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
LOG_PAGE_BYTES: Final = 256 * 1024  # the most one page of a job's full log carries
# The trainer's phases, in the order it runs them (fine_tune only with --fine-tune-epochs), and
# what each is expected to take when no version has recorded its own timings yet.
PHASES: Final = ("scan", "weights", "features", "evaluate", "train_head", "fine_tune", "publish")
GUESS_S: Final = {
    "scan": 1.0,
    "weights": 2.0,
    "features": 60.0,
    "evaluate": 60.0,
    "train_head": 15.0,
    "fine_tune": 120.0,
    "publish": 10.0,
}
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
    plan: dict[str, float] = Field(
        default_factory=dict,
        description="Expected seconds of each phase, in order (the last version's own timings, "
        "else a guess): the weights of progress.overall",
    )
    phase_seconds: dict[str, float] = Field(
        default_factory=dict, description="How long each finished phase really took"
    )

    def apply(self, event: Event) -> None:
        """Fold one trainer event into the job's progress (``progress.overall``: the whole job's
        fraction, each phase weighted by the plan, a finished phase by its real time)."""
        fields = event.fields
        if event.kind is EventKind.PHASE:
            if event.time is not None:
                self.end_phase(event.time)
            detail = fields.get("detail")
            self.progress = {"phase": fields.get("phase"), "detail": detail, "fraction": 0.0}
            if event.time is not None:
                self.progress["phase_started"] = event.time
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
        self._weigh()

    def end_phase(self, at: float) -> None:
        """Record how long the phase that runs took, ending at ``at`` (unix seconds)."""
        phase, started = self.progress.get("phase"), self.progress.get("phase_started")
        if isinstance(phase, str) and phase in self.plan and isinstance(started, int | float):
            self.phase_seconds[phase] = round(at - started, 2)

    def _weigh(self) -> None:
        """progress.overall and progress.remaining_s from the plan and the phases finished."""
        if not self.plan:
            return
        phase = self.progress.get("phase")
        fraction = float(self.progress.get("fraction") or 0.0)
        done = sum(self.phase_seconds.values())
        current = self.plan.get(phase, 0.0) if isinstance(phase, str) else 0.0
        later = sum(
            seconds
            for name, seconds in self.plan.items()
            if name not in self.phase_seconds and name != phase
        )
        total = done + current + later
        if total > 0:
            self.progress["overall"] = round((done + current * fraction) / total, 4)
            self.progress["remaining_s"] = round(current * (1 - fraction) + later, 1)


def plan_phases(timings: dict[str, Any], fine_tune: bool) -> dict[str, float]:
    """Each phase's expected seconds, in order: the recorded ``timings`` (a version's
    ``timings_s``) where they are numbers, else :data:`GUESS_S`."""
    plan = {}
    for phase in PHASES:
        if phase == "fine_tune" and not fine_tune:
            continue
        recorded = timings.get(phase)
        plan[phase] = float(recorded) if isinstance(recorded, int | float) else GUESS_S[phase]
    return plan


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

    def log_page(self, job_id: str, offset: int, limit: int) -> tuple[list[str], int, int]:
        """Lines ``offset`` to ``offset + limit`` of a job's whole log, at most
        :data:`LOG_PAGE_BYTES` of them: (lines, the offset after them, the log's line count)."""
        if not safe_id(job_id) or not self.path(job_id, ".json").exists():
            raise JobNotFound(f"no job {job_id!r}")
        lines: list[str] = []
        size, total = 0, 0
        try:
            with self.log_path(job_id).open("rb") as log:
                for number, raw in enumerate(log):
                    total = number + 1
                    if number < offset or len(lines) >= limit or size >= LOG_PAGE_BYTES:
                        continue
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    lines.append(line)
                    size += len(raw)
        except FileNotFoundError:
            pass
        return lines, offset + len(lines), total

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
