"""The Coordinator deployment (exactly one replica): retrain jobs and the replica registry.

One JobRunner for the whole cluster keeps one job at a time and owns every trainer task; if the
Coordinator restarts, Ray stops the tasks it owned and the new one records them as interrupted,
as a restarted single server does.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Final

from ray import serve

from app.cluster.registry import COORDINATOR, ClusterView, ReplicaRegistry
from app.cluster.training import RetrainResources, ray_launcher
from app.config import Settings
from app.events import Published
from app.inference.control import ReplicaStatus
from app.jobs.records import Job
from app.jobs.runner import JobRunner
from app.jobs.trainers import retrain_command
from app.observability import logs
from app.options import TrainOptions
from app.store.versions import ModelStore

logger = logging.getLogger(__name__)

PUBLISH_WAIT_S: Final = 300.0  # a published version reaches every Model replica within this


@serve.deployment(
    name=COORDINATOR,
    num_replicas=1,
    max_ongoing_requests=1000,
    ray_actor_options={"num_cpus": 0},
)
class Coordinator:
    async def __init__(self, retrain: RetrainResources) -> None:  # type: ignore[misc]
        # (Serve awaits an async constructor: the replica takes requests once it returns.)
        settings = Settings()
        logs.configure(settings.log_level, settings.log_format)
        self._store = ModelStore(settings.model_store)
        self._registry = ReplicaRegistry()
        self._jobs = JobRunner(
            self._store,
            partial(retrain_command, settings),
            self._serve_published,
            launch=ray_launcher(retrain),
        )
        await self._jobs.recover()

    def report(self, status: ReplicaStatus) -> None:
        self._registry.report(status)

    def forget(self, replica: str) -> None:
        self._registry.forget(replica)

    async def view(self) -> ClusterView:
        active = await asyncio.to_thread(self._store.pointer_or_none)
        return ClusterView(active, self._registry.current())

    async def start_job(self, options: TrainOptions) -> Job:
        return await self._jobs.start(options)

    async def cancel_job(self, job_id: str) -> Job:
        return await self._jobs.cancel(job_id)

    async def _serve_published(self, published: Published) -> None:
        """The job is done once every Model replica serves what the store's pointer names
        (they follow it); the trainer itself moved the pointer if it activated the version."""
        wanted = await asyncio.to_thread(self._store.pointer_or_none)
        if wanted is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_WAIT_S
        while not (view := await self.view()).served_everywhere(wanted):
            if loop.time() > deadline:
                lagging = [
                    r.replica for r in view.models if not r.model or r.model.number != wanted
                ]
                raise RuntimeError(f"Model replicas {lagging} do not serve version {wanted}")
            await asyncio.sleep(0.5)

    async def __del__(self) -> None:
        await self._jobs.close()
