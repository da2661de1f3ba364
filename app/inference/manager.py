"""The model that serves, and how it changes without interrupting traffic (which version should
serve is :mod:`app.inference.follower`'s business).

A new version is loaded and warmed up in a background thread while the old one keeps serving;
then the switch is one reference assignment.  The batcher reads the reference once per batch, so
in-flight batches finish on the model they started with, and the old model is released when the
last such batch drops it.  A failed load leaves the old model serving.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.inference.batching import BatchOutput
from app.store.versions import ModelStore, Version, VersionNotFound

if TYPE_CHECKING:  # both import TensorFlow: a process that never loads a model (the cluster's
    # HTTP ingress) imports this module for its types and errors only
    from app.ml.devices import DeviceInfo
    from app.ml.engines import Engine, EngineChoice

logger = logging.getLogger(__name__)


class NoModel(RuntimeError):
    """No version is loaded (503)."""


class ModelLoadError(RuntimeError):
    """A version could not be loaded or warmed up; the previous model still serves."""


@dataclass(frozen=True)
class LoadedModel:
    version: Version
    engine: Engine
    device: DeviceInfo
    loaded_at: str

    @property
    def number(self) -> int:
        return self.version.number

    @property
    def classes(self) -> list[str]:
        return self.version.classes


class ModelManager:
    def __init__(self, store: ModelStore, device: DeviceInfo, engines: EngineChoice) -> None:
        self.store = store
        self.device = device
        self.engines = engines
        self.current: LoadedModel | None = None
        self._switch_lock = asyncio.Lock()
        self.on_loaded: list[Callable[[LoadedModel], None]] = []

    def require(self) -> LoadedModel:
        current = self.current
        if current is None:
            raise NoModel(
                f"no model is loaded: the store {self.store.root} has no usable version. "
                "Train one with `python -m app.train --data-dir PATH` (or POST /admin/retrain)"
            )
        return current

    def run_batch(self, images: np.ndarray) -> BatchOutput[LoadedModel]:
        """Called in the inference thread: one snapshot of the model for the whole batch."""
        model = self.require()
        return BatchOutput(model.engine.predict(images), model)

    async def switch_to(self, number: int) -> LoadedModel:
        """Load and warm ``number`` off the event loop, then swap it in (one at a time)."""
        async with self._switch_lock:
            current = self.current
            if current is not None and current.number == number:
                return current
            loaded = await asyncio.to_thread(self._load, number)
            self.current = loaded
            logger.info(
                "now serving version %d (%s engine, %s)",
                number,
                loaded.engine.name,
                self.device.name,
            )
            for callback in self.on_loaded:
                callback(loaded)
            return loaded

    def _load(self, number: int) -> LoadedModel:
        from app.ml.engines import load_engine

        try:
            version = self.store.get(number)
            engine = load_engine(version, self.engines, self.device)
            engine.warm_up()
        except VersionNotFound:  # 404, not a load failure
            raise
        except Exception as error:  # any load failure must leave the old model serving
            logger.exception("could not load version %d", number)
            raise ModelLoadError(f"version {number} could not be loaded: {error}") from error
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return LoadedModel(version, engine, self.device, now)
