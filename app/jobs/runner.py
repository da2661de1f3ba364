"""Background retrain jobs: one at a time across every server sharing the store (see
:mod:`app.jobs.lock`), each a trainer running ``python -m app.train`` (:mod:`app.jobs.trainers`:
a child process here, a Ray task on a cluster).

Its progress is read back from the events it writes (:mod:`app.events`), never guessed.  Records
are kept by :class:`~app.jobs.records.JobRecords`; every file operation runs off the event loop.
What happens once a version is published (serving it) is the caller's ``on_published``.

A record says what happened: a cancel is honoured until the trainer starts to publish; from
there the trainer holds it off until its success is reported, so a job is either cancelled with
nothing published, or succeeded with its version (and the DELETE says it came too late).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from app.events import EventKind, EventReader, Published
from app.jobs.lock import RENEW_EVERY_S, JobLock, JobLocked
from app.jobs.records import ACTIVE, Job, JobRecords, JobResult, JobState, now, plan_phases
from app.jobs.trainers import CHILD_NICENESS, Launch, Trainer, launch_child
from app.options import TrainOptions
from app.store import processes
from app.store.versions import ModelStore

logger = logging.getLogger(__name__)

POLL_S: Final = 0.5
CANCEL_GRACE_S: Final = 15

Command = Callable[[TrainOptions], list[str]]  # the trainer's command line for a recipe
OnPublished = Callable[[Published], Awaitable[None]]


class JobConflict(RuntimeError):
    """Another job is running, or the job is not running (409)."""


class JobControl(Protocol):
    """What the admin API uses: a JobRunner here, or a client of the cluster's one."""

    async def recover(self) -> None: ...

    async def list_jobs(self) -> list[Job]:
        """Every job, newest first."""
        ...

    async def get_job(self, job_id: str) -> Job:
        """One job with the last lines of its log (JobNotFound: 404)."""
        ...

    async def log_page(self, job_id: str, offset: int, limit: int) -> tuple[list[str], int, int]:
        """Lines of a job's whole log: (lines, next offset, line count) (JobNotFound: 404)."""
        ...

    async def start(self, train_options: TrainOptions) -> Job: ...

    async def cancel(self, job_id: str) -> Job: ...

    async def close(self) -> None: ...


class _Outcome:
    """What the trainer's events said about the end of its run."""

    def __init__(self) -> None:
        self.published: Published | None = None
        self.failure: str | None = None


class JobRunner:
    """Starts, watches and cancels retrain jobs."""

    def __init__(
        self,
        store: ModelStore,
        command: Command,
        on_published: OnPublished,
        launch: Launch | None = None,
    ) -> None:
        self.store = store
        self.records = JobRecords(store.root / "jobs")
        self.lock = JobLock(store.root / "jobs")
        self._command = command
        self._on_published = on_published
        self._launch = launch or launch_child
        self._trainers: dict[str, Trainer] = {}
        self._monitors: set[asyncio.Task[None]] = set()
        self._cancelling: set[str] = set()
        self._lock = asyncio.Lock()

    async def list_jobs(self) -> list[Job]:
        return await asyncio.to_thread(self.records.all)

    async def get_job(self, job_id: str) -> Job:
        return await asyncio.to_thread(self.records.get, job_id)

    async def recover(self) -> None:
        """Jobs whose supervising server is gone are failed as interrupted; a job that another
        live server (sharing the store) runs is left alone."""
        for job in await asyncio.to_thread(self._recover):
            logger.warning("job %s was interrupted: its server stopped while it ran", job.id)

    def _recover(self) -> list[Job]:
        holder = self.lock.holder()
        elsewhere: frozenset[str] = frozenset()
        if holder is not None and holder.alive(time.time()) and holder.owner != processes.me():
            elsewhere = frozenset({holder.job_id})
        return self.records.fail_interrupted(elsewhere)

    async def start(self, train_options: TrainOptions) -> Job:
        """Start a job, or raise JobConflict naming the one that runs (here or elsewhere)."""
        async with self._lock:
            job = Job(
                id=uuid.uuid4().hex[:12],
                state=JobState.QUEUED,
                params=train_options.model_dump(mode="json"),
                created_at=now(),
                owner=str(processes.me()),
                plan=await asyncio.to_thread(self._plan, train_options),
            )
            try:
                replaced = await asyncio.to_thread(self.lock.acquire, job.id)
            except JobLocked as error:
                raise JobConflict(str(error)) from None
            if replaced is not None:
                await self.recover()  # its server died: that job is failed as interrupted
            try:
                await asyncio.to_thread(self.records.save, job)
                process = await self._spawn(job, train_options)
            except BaseException:
                await asyncio.to_thread(self.lock.release, job.id)
                raise
            job.state, job.started_at, job.pid = JobState.RUNNING, now(), process.pid
            await asyncio.to_thread(self.records.save, job)
        monitor = asyncio.create_task(self._watch(job, process), name=f"job-{job.id}")
        self._monitors.add(monitor)
        monitor.add_done_callback(self._monitors.discard)
        return job

    def _plan(self, train_options: TrainOptions) -> dict[str, float]:
        """The phases' expected seconds: the newest version's own timings, where it has them."""
        timings: dict[str, object] = {}
        for version in reversed(self.store.versions()):
            recorded = version.metadata.as_dict().get("timings_s")
            if isinstance(recorded, dict) and recorded:
                timings = recorded
                break
        return plan_phases(timings, fine_tune=train_options.fine_tune_epochs > 0)

    async def log_page(self, job_id: str, offset: int, limit: int) -> tuple[list[str], int, int]:
        return await asyncio.to_thread(self.records.log_page, job_id, offset, limit)

    async def _spawn(self, job: Job, train_options: TrainOptions) -> Trainer:
        command = [
            *self._command(train_options),
            "--job-id",
            job.id,
            "--progress-file",
            str(self.records.events_path(job.id)),
            "--nice",
            str(CHILD_NICENESS),
            "--die-with-parent",
        ]
        process = await self._launch(command, self.records.log_path(job.id))
        self._trainers[job.id] = process
        logger.info("job %s started (pid %s)", job.id, process.pid)
        return process

    async def _watch(self, job: Job, process: Trainer) -> None:
        reader = EventReader(self.records.events_path(job.id))
        outcome = _Outcome()
        renewed = time.monotonic()
        try:
            while True:
                try:
                    code: int | None = await asyncio.wait_for(process.wait(), POLL_S)
                except TimeoutError:
                    code = None
                changed = await self._read_events(reader, job, outcome)
                if code is not None:
                    break
                if changed:
                    await asyncio.to_thread(self.records.save, job)
                if time.monotonic() - renewed > RENEW_EVERY_S:
                    renewed = time.monotonic()
                    await asyncio.to_thread(self.lock.renew, job.id)
            self._trainers.pop(job.id, None)
            await self._finish(job, code, outcome)
        finally:
            await asyncio.to_thread(self.lock.release, job.id)

    async def _read_events(self, reader: EventReader, job: Job, outcome: _Outcome) -> bool:
        events = await asyncio.to_thread(reader.read_new)
        for event in events:
            job.apply(event)
            if event.kind is EventKind.SUCCEEDED:
                outcome.published = event.published()
            elif event.kind is EventKind.FAILED:
                outcome.failure = str(event.fields.get("error"))
        return bool(events)

    async def _finish(self, job: Job, code: int, outcome: _Outcome) -> None:
        published = outcome.published or await asyncio.to_thread(self._published_by, job.id)
        cancelling = job.id in self._cancelling
        if published is not None:
            job.result = JobResult(**published.model_dump())
            job.result.serving_error = await self._serve(published)
            job.state, job.error = JobState.SUCCEEDED, None
            late = " (the cancel came after publishing had begun)" if cancelling else ""
            detail = f"published version {published.version}{late}"
            job.end_phase(time.time())
            job.progress = {"phase": "done", "detail": detail, "fraction": 1.0, "overall": 1.0}
        elif cancelling:
            job.state, job.error = JobState.CANCELLED, "cancelled by an operator: nothing published"
        else:
            job.state = JobState.FAILED
            job.error = outcome.failure or f"the trainer exited with status {code}"
        job.finished_at, job.pid = now(), None
        self._cancelling.discard(job.id)
        await asyncio.to_thread(self.records.save, job)
        logger.info("job %s %s", job.id, job.state)

    def _published_by(self, job_id: str) -> Published | None:
        """A version this job's trainer published before it died without saying so."""
        for version in reversed(self.store.versions()):
            if version.metadata.job is not None and version.metadata.job.id == job_id:
                return Published(
                    version=version.number,
                    activated=self.store.pointer_or_none() == version.number,
                    reason="the trainer stopped after publishing, before reporting it",
                    val_accuracy=version.metadata.val_accuracy,
                )
        return None

    async def _serve(self, published: Published) -> str | None:
        """The job is done once its version serves (or could not): the error, if any."""
        try:
            await self._on_published(published)
        except Exception as error:  # a version that cannot serve is reported, not fatal
            logger.error("version %d could not be served: %s", published.version, error)
            return str(error)
        return None

    async def cancel(self, job_id: str) -> Job:
        """Stop a running job's trainer (SIGTERM, then SIGKILL); it publishes nothing."""
        job = await asyncio.to_thread(self.records.get, job_id)
        process = self._trainers.get(job_id)
        if job.state not in ACTIVE or process is None:
            raise JobConflict(f"job {job_id} is {job.state}, not running")
        self._cancelling.add(job_id)
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            process.kill()
            await process.wait()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        ended = await asyncio.to_thread(self.records.get, job_id)
        if ended.state is JobState.SUCCEEDED and ended.result is not None:
            raise JobConflict(
                f"job {job_id} could not be cancelled: it had begun publishing, and version "
                f"{ended.result.version} is published (see the job's record)"
            )
        return ended

    async def close(self) -> None:
        """Server shutdown: stop any trainer; its job is recorded as interrupted."""
        running = list(self._trainers.items())
        for job_id, process in running:
            self._cancelling.discard(job_id)
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), CANCEL_GRACE_S)
        for monitor in list(self._monitors):
            monitor.cancel()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        for job_id, _ in running:
            await asyncio.to_thread(self.lock.release, job_id)
        await self.recover()
