"""Where a request's images meet a model: the seam between the request path and the engine.

Every protocol's path reads the same: route -> upload/decoding -> ``backend.infer`` -> response.
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
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np

from app.config import Settings
from app.inference.batching import Batcher, BatchObserver, Result
from app.inference.follower import StoreFollower
from app.inference.manager import LoadedModel, ModelManager
from app.store.metadata import VersionMetadata
from app.store.versions import ModelStore

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

_MAX_VERSION_RETRIES: Final = 3


@dataclass(frozen=True)
class ServingModel:
    """What a route may tell about a loaded version."""

    number: int
    classes: list[str]
    metadata: VersionMetadata
    loaded_at: str
    engine: str
    precision: str
    device: str
    batch_sizes: tuple[int, ...]

    @classmethod
    def of(cls, loaded: LoadedModel) -> ServingModel:
        return cls(
            number=loaded.number,
            classes=loaded.classes,
            metadata=loaded.version.metadata,
            loaded_at=loaded.loaded_at,
            engine=loaded.engine.name,
            precision=loaded.engine.precision,
            device=loaded.device.name,
            batch_sizes=tuple(loaded.engine.batch_sizes),
        )


@dataclass(frozen=True)
class Inference:
    """One request's rows, in upload order, every one computed by the same version."""

    version: int
    classes: list[str]
    probabilities: np.ndarray  # (images, classes)


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica of a cluster deployment, as it last reported itself."""

    deployment: str
    replica: str
    node: str
    pid: int
    model: ServingModel | None = None
    requests: int = 0
    images: int = 0
    batches: int = 0
    retried: int = 0  # requests sent again because the replica answering them died


class InferenceBackend(Protocol):
    async def start(self) -> None: ...

    async def stop(self, drain_s: float) -> None: ...

    def serving(self) -> ServingModel | None:
        """The model that answers requests now (None: not ready)."""
        ...

    def require(self) -> ServingModel:
        """The serving model, or NoModel (503)."""
        ...

    def ensure_room(self, images: int = 1) -> None:
        """Overloaded (503) unless ``images`` more can wait for the model now."""
        ...

    def arriving(self) -> AbstractContextManager[None]:
        """Mark a request whose images are still uploading or decoding."""
        ...

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference: ...

    async def activate(self, number: int) -> None:
        """Load and warm ``number`` beside the serving model, swap it in, point the store at it."""
        ...

    def replicas(self) -> list[ReplicaStatus] | None:
        """Every replica of a cluster deployment; None for one process."""
        ...


class LocalBackend:
    """The batcher, the model manager and the store follower of this process."""

    def __init__(
        self,
        models: ModelManager,
        follower: StoreFollower,
        batcher: Batcher[LoadedModel],
        poll_interval_s: float,
    ) -> None:
        self.models = models
        self.follower = follower
        self.batcher = batcher
        self.poll_interval_s = poll_interval_s
        self._background: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start batching; load and warm up in the background, then follow the store's pointer.

        Liveness answers at once, readiness once warmed up (``load()`` first to wait).
        """
        self.batcher.start()
        self._background = asyncio.create_task(self._load_then_follow(), name="model-loader")

    async def load(self) -> None:
        """Load and warm up what the store's pointer names (errors are logged, not raised)."""
        try:
            if await self.follower.start() is None:
                logger.warning("model_store %s holds no usable version: not ready", self.store.root)
        except Exception:
            logger.exception("the active model could not be loaded; the server is not ready")

    @property
    def store(self) -> ModelStore:
        return self.models.store

    async def _load_then_follow(self) -> None:
        if self.models.current is None:
            await self.load()
        await self.follower.follow(self.poll_interval_s)

    async def stop(self, drain_s: float) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._background
        await self.batcher.stop(drain_s)

    def serving(self) -> ServingModel | None:
        current = self.models.current
        return ServingModel.of(current) if current is not None else None

    def require(self) -> ServingModel:
        return ServingModel.of(self.models.require())

    def ensure_room(self, images: int = 1) -> None:
        self.batcher.ensure_room(images)

    def arriving(self) -> AbstractContextManager[None]:
        return self.batcher.arriving()

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference:
        results = await self._consistent_results(images, timeout_s)
        model = results[0].tag
        rows = np.stack([result.probabilities for result in results])
        return Inference(model.number, model.classes, rows)

    async def _consistent_results(
        self, images: Sequence[np.ndarray], timeout_s: float
    ) -> list[Result[LoadedModel]]:
        """Every image of one request answered by one version, even across a hot swap."""
        self.models.require()
        results = await self.batcher.predict(images, timeout_s)
        for _ in range(_MAX_VERSION_RETRIES):
            serving = self.models.require().number
            stale = [i for i, r in enumerate(results) if r.tag.number != serving]
            if not stale:
                break
            redone = await self.batcher.predict([images[i] for i in stale], timeout_s)
            for index, result in zip(stale, redone, strict=True):
                results[index] = result
        return results

    async def activate(self, number: int) -> None:
        await self.models.switch_to(number)
        await asyncio.to_thread(self.models.store.set_active, number)

    def replicas(self) -> list[ReplicaStatus] | None:
        return None


def local_backend(
    settings: Settings,
    observer: BatchObserver | None = None,
    on_loaded: Callable[[LoadedModel], None] | None = None,
) -> LocalBackend:
    """A LocalBackend over ``settings``' store, on this process's device (imports TensorFlow)."""
    from app.ml.devices import configure_devices
    from app.ml.engines import EngineChoice

    device = configure_devices()
    logger.info("inference device: %s (%s backend)", device.name, device.backend)
    engines = EngineChoice(settings.engine, settings.max_batch_size, settings.engine_precision)
    models = ModelManager(ModelStore(settings.model_store), device, engines)
    if on_loaded is not None:
        models.on_loaded.append(on_loaded)
    follower = StoreFollower(models)
    batcher = Batcher(
        models.run_batch,
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        queue_limit=settings.queue_limit,
        observer=observer,
    )
    return LocalBackend(models, follower, batcher, settings.poll_interval_s)
