"""Where a request's images meet a model: the data plane's seam between the request path and the
engine.

:class:`LocalBackend` is this process's batcher and model manager.  The Ray Serve adapter
(``app/cluster``) runs a LocalBackend in each model replica and gives its HTTP replicas a backend
that calls one through a DeploymentHandle.  What crosses the seam is plain, picklable data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from app.inference.batching import Batcher, Scored
from app.inference.control import ReplicaStatus
from app.inference.follower import StoreFollower
from app.inference.manager import ModelManager, ServingModel
from app.inference.turns import Turns
from app.store.holds import RENEW_EVERY_S
from app.store.versions import ModelStore

logger = logging.getLogger(__name__)

_MAX_VERSION_RETRIES: Final = 3


@dataclass(frozen=True)
class Inference:
    """One request's rows, in upload order, every one computed by the same version."""

    version: int
    classes: list[str]
    probabilities: np.ndarray  # (images, classes)


class InferenceBackend(Protocol):
    turns: Turns  # decodes and batches on this process's cores (off: batches run elsewhere)

    async def start(self) -> None: ...

    async def stop(self, drain_s: float) -> None: ...

    def serving(self) -> ServingModel | None:
        """The model that answers requests now (None: not ready)."""
        ...

    def ready_model(self) -> ServingModel:
        """The serving model, or NoModel (503)."""
        ...

    def ensure_room(self, images: int = 1) -> None:
        """Overloaded (503) unless ``images`` more can wait for the model now."""
        ...

    def images_on_the_way(self) -> AbstractContextManager[None]:
        """Mark a request whose images are still uploading or decoding."""
        ...

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference: ...


class LocalBackend:
    """The batcher, the model manager and the store follower of this process (the data plane),
    and the activation of a version (the control plane)."""

    def __init__(
        self,
        models: ModelManager,
        follower: StoreFollower,
        batcher: Batcher[ServingModel],
        poll_interval_s: float,
    ) -> None:
        self.models = models
        self.follower = follower
        self.batcher = batcher
        self.turns = batcher.turns
        self.poll_interval_s = poll_interval_s
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start batching; load and warm up in the background, then follow the store's pointer,
        renewing the serving version's hold in the store.

        Liveness answers at once, readiness once warmed up (``load()`` first to wait).
        """
        self.batcher.start()
        self._background = [
            asyncio.create_task(self._load_then_follow(), name="model-loader"),
            asyncio.create_task(self._renew_hold(), name="hold-renewer"),
        ]

    async def load(self) -> None:
        """Load and warm up what the store's pointer names (errors are logged, not raised)."""
        try:
            if await self.follower.start() is None:
                logger.warning(
                    "model_store %s holds no usable version: not ready. Train one with `python "
                    "-m app.train --data-dir PATH --model-store %s`, or POST /admin/retrain",
                    self.store.root,
                    self.store.root,
                )
        except Exception:
            logger.exception("the active model could not be loaded; the server is not ready")

    @property
    def store(self) -> ModelStore:
        return self.models.store

    async def _load_then_follow(self) -> None:
        if self.models.current is None:
            await self.load()
        await self.follower.follow(self.poll_interval_s)

    async def _renew_hold(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await asyncio.to_thread(self.models.renew_hold)
            except OSError as error:  # a store that is briefly unreachable: the next one
                logger.warning("could not renew the serving version's hold: %s", error)

    async def stop(self, drain_s: float) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.batcher.stop(drain_s)
        await asyncio.to_thread(self.models.release)

    def serving(self) -> ServingModel | None:
        return self.models.current

    def ready_model(self) -> ServingModel:
        return self.models.ready_model()

    def ensure_room(self, images: int = 1) -> None:
        self.batcher.ensure_room(images)

    def images_on_the_way(self) -> AbstractContextManager[None]:
        return self.batcher.images_on_the_way()

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference:
        rows = await self._one_version(images, timeout_s)
        model = rows[0].tag
        return Inference(model.number, model.classes, np.stack([r.probabilities for r in rows]))

    async def _one_version(
        self, images: Sequence[np.ndarray], timeout_s: float
    ) -> list[Scored[ServingModel]]:
        """Every image of one request answered by one version, even across a hot swap."""
        self.models.ready_model()
        rows = await self.batcher.predict(images, timeout_s)
        for _ in range(_MAX_VERSION_RETRIES):
            serving = self.models.ready_model().number
            stale = [i for i, row in enumerate(rows) if row.tag.number != serving]
            if not stale:
                break
            redone = await self.batcher.predict([images[i] for i in stale], timeout_s)
            for index, row in zip(stale, redone, strict=True):
                rows[index] = row
        return rows

    async def activate(self, number: int) -> None:
        await self.models.switch_to(number)
        await asyncio.to_thread(self.models.store.set_active, number)

    def replicas(self) -> list[ReplicaStatus] | None:
        return None
