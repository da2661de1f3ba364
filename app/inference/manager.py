"""The model that serves, and how it changes without interrupting traffic (which version should
serve is :mod:`app.inference.follower`'s business).

A new version is loaded and warmed up in a background thread while the old one keeps serving;
then the switch is one reference assignment.  The batcher reads the reference once per batch, so
in-flight batches finish on the model they started with, and the old model is released when the
last such batch drops it.  A failed load leaves the old model serving.

The version being loaded, and then the one that serves, is held in the store
(:mod:`app.store.holds`): no process sharing the store can delete it meanwhile, and a version
that vanished anyway while it loaded is never swapped in.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np

from app.inference.batching import Scored
from app.store.metadata import VersionMetadata
from app.store.versions import ModelStore, Version, VersionNotFound

if TYPE_CHECKING:  # a type only: loading engines (TensorFlow, OpenVINO) is the loader's business
    from app.ml.engines import Engine

logger = logging.getLogger(__name__)


class NoModel(RuntimeError):
    """No version is loaded (503)."""


NOT_READY: Final = "no model is loaded yet: the server is not ready (see /health/ready)"


class ModelLoadError(RuntimeError):
    """A version could not be loaded or warmed up; the previous model still serves."""


@dataclass(frozen=True)
class ServingModel:
    """A loaded version, as anyone may be told about it (plain data: it crosses a cluster)."""

    number: int
    classes: list[str]
    metadata: VersionMetadata
    loaded_at: str
    engine: str
    precision: str
    float_precision: str  # what an INT8 IR's layers kept in float compute in (else = precision)
    device: str
    batch_sizes: tuple[int, ...]


class EngineLoader(Protocol):
    device_name: str  # where its engines run, as a person reads it

    def load(self, version: Version) -> Engine:
        """The version in its engine, warmed up (blocking: called off the event loop)."""
        ...


class ModelObserver(Protocol):
    def model_loaded(
        self, version: int, engine: str, device: str, precision: str, float_precision: str
    ) -> None: ...


@dataclass(frozen=True)
class _Loaded:
    model: ServingModel
    engine: Engine
    hold: Path  # the version's hold in the store, released when it stops serving


class ModelManager:
    def __init__(
        self, store: ModelStore, loader: EngineLoader, observer: ModelObserver | None = None
    ) -> None:
        self.store = store
        self.loader = loader
        self._observer = observer
        self._loaded: _Loaded | None = None
        self._switch_lock = asyncio.Lock()

    @property
    def current(self) -> ServingModel | None:
        loaded = self._loaded
        return loaded.model if loaded is not None else None

    def ready_model(self) -> ServingModel:
        """The serving model, or NoModel (503)."""
        current = self.current
        if current is None:
            # Anonymous clients learn that much; where the store is and how to fill it is the
            # operator's business: the log says it (LocalBackend.load).
            raise NoModel(NOT_READY)
        return current

    def parallel_batches(self) -> int:
        """Batches the serving engine computes at once (1 while none is loaded)."""
        loaded = self._loaded
        return loaded.engine.parallel_batches if loaded is not None else 1

    def run_batch(self, images: np.ndarray) -> Scored[ServingModel]:
        """Called in the inference thread: one snapshot of the model for the whole batch."""
        loaded = self._loaded
        if loaded is None:
            raise NoModel("no model is loaded")
        return Scored(loaded.engine.predict(images), loaded.model)

    async def switch_to(self, number: int) -> ServingModel:
        """Load and warm ``number`` off the event loop, then swap it in (one at a time)."""
        async with self._switch_lock:
            current = self.current
            if current is not None and current.number == number:
                return current
            loaded = await asyncio.to_thread(self._load, number)
            previous, self._loaded = self._loaded, loaded
            if previous is not None:
                await asyncio.to_thread(self.store.holds.release, previous.hold)
            model = loaded.model
            logger.info(
                "now serving version %d (%s engine, %s)", number, model.engine, model.device
            )
            if self._observer is not None:
                self._observer.model_loaded(
                    number, model.engine, model.device, model.precision, model.float_precision
                )
            return model

    def renew_hold(self) -> None:
        """Tell the processes sharing the store that the serving version is still held."""
        loaded = self._loaded
        if loaded is not None:
            self.store.holds.renew(loaded.hold)

    def release(self) -> None:
        """At shutdown: the serving version is no longer held by this process."""
        loaded = self._loaded
        if loaded is not None:
            self.store.holds.release(loaded.hold)

    def _load(self, number: int) -> _Loaded:
        hold: Path | None = None
        try:
            hold = self.store.hold(number)  # VersionNotFound (404) when it is not there
            version = self.store.get(number)
            engine = self.loader.load(version)
            self.store.get(number)  # still there: a version that vanished is never swapped in
        except BaseException as error:
            if hold is not None:
                self.store.holds.release(hold)
            if isinstance(error, VersionNotFound | KeyboardInterrupt | SystemExit):
                raise
            logger.exception("could not load version %d", number)
            raise ModelLoadError(f"version {number} could not be loaded: {error}") from error
        return _Loaded(_describe(version, engine, self.loader.device_name), engine, hold)


def _describe(version: Version, engine: Engine, device: str) -> ServingModel:
    return ServingModel(
        number=version.number,
        classes=version.classes,
        metadata=version.metadata,
        loaded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        engine=engine.name,
        precision=engine.precision,
        float_precision=engine.float_precision,
        device=device,
        batch_sizes=tuple(engine.batch_sizes),
    )
