"""The Model deployment: our batcher and engine (a LocalBackend) on this replica's device.

A replica loads the store's active version before it takes traffic (Serve routes to it once the
constructor returns), then follows the active pointer: an activation anywhere reaches every
replica, each swapping between batches with no failed request.  ``max_ongoing_requests`` must
be at least the batch size, or Serve never lets enough requests in to fill a batch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from app.cluster.registry import MODEL
from app.cluster.replica import StatusReporter, identity
from app.config import Settings
from app.inference import memory
from app.inference.backend import Inference
from app.inference.control import ReplicaStatus
from app.observability import logs

logger = logging.getLogger(__name__)


class _Counts:
    """This replica's work, as it reports it (a BatchObserver)."""

    def __init__(self) -> None:
        self.requests = 0
        self.images = 0
        self.batches = 0

    def queue_depth(self, depth: int) -> None:
        pass

    def batch_done(self, size: int, seconds: float) -> None:
        self.images += size
        self.batches += 1


@serve.deployment(name=MODEL, max_ongoing_requests=64, graceful_shutdown_timeout_s=20)
class Model:
    async def __init__(self, coordinator: DeploymentHandle[Any]) -> None:  # type: ignore[misc]
        # (Serve awaits an async constructor: the replica takes requests once it returns.)
        self._settings = settings = Settings()
        logs.configure(settings.log_level, settings.log_format)
        self._counts = _Counts()
        with memory.startup():  # the imports; the model loads next
            from app.inference.loading import local_backend  # TensorFlow: in this replica only

        self._backend = local_backend(settings, batch_observer=self._counts)
        await self._backend.load()  # a failure is logged: 503s meanwhile, the store followed
        await self._backend.start()
        self._me = identity()
        self._reporter = StatusReporter(coordinator, self._status)
        await self._reporter.report_now()
        self._reporter.start()

    async def infer(self, images: np.ndarray, timeout_s: float) -> Inference:
        """One request's images, answered by one version (the batcher mixes requests)."""
        inference = await self._backend.infer(list(images), timeout_s)
        self._counts.requests += 1
        return inference

    async def activate(self, number: int) -> None:
        await self._backend.activate(number)
        await self._reporter.report_now()

    def _status(self) -> ReplicaStatus:
        counts = self._counts
        return self._me.status(
            model=self._backend.serving(),
            requests=counts.requests,
            images=counts.images,
            batches=counts.batches,
        )

    async def __del__(self) -> None:
        await self._reporter.stop()
        await self._backend.stop(self._settings.shutdown_drain_s)
