"""The Ingress side of the cluster: an inference backend and job control over DeploymentHandles.

The HTTP app is the single-process one; only what sits behind ``service.backend`` (and
``service.control``) and ``service.jobs`` lives elsewhere: the batcher and the engine in Model
replicas, the retrain jobs in the Coordinator.  A request's images go to one Model replica in
one call, which answers them all with one version.  If that replica dies, the request is sent
once more, to another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import numpy as np
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from app.cluster.registry import ClusterView
from app.cluster.replica import Identity, StatusReporter
from app.config import Settings
from app.inference.backend import Inference
from app.inference.batching import Overloaded, ShuttingDown, TimedOut
from app.inference.control import ReplicaStatus
from app.inference.manager import NOT_READY, NoModel, ServingModel
from app.inference.turns import Turns
from app.jobs.records import Job, JobRecords
from app.options import TrainOptions

logger = logging.getLogger(__name__)

RETRIES: Final = 1  # a request whose Model replica died is sent once more, to another replica
REFRESH_S: Final = 0.5
ACTIVATION_WAIT_S: Final = 120.0  # every replica loads the new version; then activate returns
_REPLY_MARGIN_S: Final = 2.0  # the replica's own 504 arrives before the ingress gives up


class ReplicaLost(NoModel):
    """The Model replicas answering a request died twice in a row (503 + Retry-After)."""


async def call(response: DeploymentResponse[Any] | DeploymentResponseGenerator[Any]) -> Any:
    """A deployment method's result, its errors raised as themselves (not wrapped by Ray)."""
    if isinstance(response, DeploymentResponseGenerator):
        raise TypeError("a streaming method was called as a unary one")
    try:
        return await response
    except RayTaskError as error:
        if isinstance(error.cause, Exception):
            raise error.cause from None
        raise


class RemoteBackend:
    """The batcher and the engines are in Model replicas; this keeps the cluster's view."""

    def __init__(
        self,
        model: DeploymentHandle[Any],
        coordinator: DeploymentHandle[Any],
        settings: Settings,
        me: Identity,
    ) -> None:
        self._model = model
        self._coordinator = coordinator
        self.queue_limit = settings.queue_limit
        self.turns = Turns.off()  # the batches compute in the replicas' processes
        self._view = ClusterView(active=None)
        self._outstanding = 0  # images of this ingress waiting for a Model replica
        self._idle = asyncio.Event()  # set while none is
        self._idle.set()
        self._accepting = False
        self._me = me
        self.requests = 0
        self.images = 0
        self.retried = 0
        self._refresher: asyncio.Task[None] | None = None
        self._reporter = StatusReporter(coordinator, self.status)

    def status(self) -> ReplicaStatus:
        return self._me.status(requests=self.requests, images=self.images, retried=self.retried)

    async def start(self) -> None:
        self._accepting = True
        with contextlib.suppress(Exception):  # the first view may come a little later
            await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="cluster-view")
        self._reporter.start()

    async def stop(self, drain_s: float) -> None:
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await self._idle.wait()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self._reporter.stop()

    async def refresh(self) -> ClusterView:
        self._view = await call(self._coordinator.view.remote())
        return self._view

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception as error:  # keep the last view; the Coordinator may be restarting
                logger.debug("could not refresh the cluster view: %s", error)

    def serving(self) -> ServingModel | None:
        return self._view.serving()

    def ready_model(self) -> ServingModel:
        model = self.serving()
        if model is None:
            raise NoModel(NOT_READY)  # the replicas log why (an empty store, a load failure)
        return model

    def ensure_room(self, images: int = 1) -> None:
        if not self._accepting:
            raise ShuttingDown("the server is shutting down")
        if self._outstanding + images > self.queue_limit:
            raise Overloaded(
                f"the server is at capacity ({self._outstanding} images on their way to the "
                f"model, limit {self.queue_limit})"
            )

    def images_on_the_way(self) -> AbstractContextManager[None]:
        # The batcher is in another process: it closes a batch when its own queue is empty.
        return contextlib.nullcontext()

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference:
        self.ensure_room(len(images))
        batch = np.stack(images)
        self._outstanding += len(batch)
        self._idle.clear()
        try:
            inference = await self._infer_retrying(batch, timeout_s)
        finally:
            self._outstanding -= len(batch)
            if not self._outstanding:
                self._idle.set()
        self.requests += 1
        self.images += len(batch)
        return inference

    async def _infer_retrying(self, batch: np.ndarray, timeout_s: float) -> Inference:
        for attempt in range(RETRIES + 1):
            try:
                async with asyncio.timeout(timeout_s + _REPLY_MARGIN_S):
                    inference: Inference = await call(self._model.infer.remote(batch, timeout_s))
                    return inference
            except TimeoutError:
                raise TimedOut(f"no prediction within the {timeout_s:g}s request timeout") from None
            except RayActorError as error:
                if attempt == RETRIES:
                    raise ReplicaLost(
                        "the model replicas answering this request died; try again"
                    ) from None
                self.retried += 1
                logger.warning("a Model replica died during a request (%s); retrying", error)
        raise AssertionError("unreachable")

    async def activate(self, number: int) -> None:
        """One Model replica loads the version and points the store at it; the others follow
        the pointer.  Returns once every replica serves it (or after ACTIVATION_WAIT_S)."""
        await call(self._model.activate.remote(number))
        deadline = time.monotonic() + ACTIVATION_WAIT_S
        while not (await self.refresh()).served_everywhere(number):
            if time.monotonic() > deadline:
                logger.warning("some Model replicas do not serve version %d yet", number)
                return
            await asyncio.sleep(0.2)

    def replicas(self) -> list[ReplicaStatus] | None:
        return self._view.replicas


class RemoteJobs:
    """Retrain jobs on a cluster: the Coordinator runs them; the records are in the shared store."""

    def __init__(self, coordinator: DeploymentHandle[Any], records: JobRecords) -> None:
        self._coordinator = coordinator
        self._records = records

    async def recover(self) -> None:
        """Nothing here: the Coordinator recovers the jobs when it starts."""

    async def list_jobs(self) -> list[Job]:
        return await asyncio.to_thread(self._records.all)

    async def get_job(self, job_id: str) -> Job:
        return await asyncio.to_thread(self._records.get, job_id)

    async def log_page(self, job_id: str, offset: int, limit: int) -> tuple[list[str], int, int]:
        return await asyncio.to_thread(self._records.log_page, job_id, offset, limit)

    async def start(self, options: TrainOptions) -> Job:
        job: Job = await call(self._coordinator.start_job.remote(options))
        return job

    async def cancel(self, job_id: str) -> Job:
        job: Job = await call(self._coordinator.cancel_job.remote(job_id))
        return job

    async def close(self) -> None:
        """Nothing here: jobs outlive an Ingress replica."""
