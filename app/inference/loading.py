"""Engines for this process's device: the one module of the data plane that imports TensorFlow
(and OpenVINO), so that a process which never runs a model (a cluster's HTTP Ingress) never
imports it.  Import it where a model will run: the server's composition root and the cluster's
Model replicas.
"""

from __future__ import annotations

import logging

from app.config import Settings
from app.inference.backend import LocalBackend
from app.inference.batching import Batcher, BatchObserver
from app.inference.follower import StoreFollower
from app.inference.manager import ModelManager, ModelObserver
from app.inference.turns import Turns
from app.ml.devices import DeviceInfo, configure_devices
from app.ml.engines import Engine, EngineChoice, computes_on_the_cpu, load_engine
from app.store.versions import ModelStore, Version

logger = logging.getLogger(__name__)


class DeviceEngineLoader:
    """Loads versions into the configured engine on this process's device, warmed up."""

    def __init__(self, device: DeviceInfo, choice: EngineChoice) -> None:
        self.device = device
        self.device_name = device.name
        self.choice = choice

    def load(self, version: Version) -> Engine:
        engine = load_engine(version, self.choice, self.device)
        engine.warm_up()
        return engine


def engine_loader(settings: Settings) -> DeviceEngineLoader:
    """The engines ``settings`` choose (FLOWERS_ENGINE, _MAX_BATCH_SIZE, _ENGINE_PRECISION,
    _ENGINE_STREAMS, _TTA), on this process's device: the server's and ``flowers-predict``'s
    alike."""
    device = configure_devices()
    logger.info("inference device: %s (%s backend)", device.name, device.backend)
    choice = EngineChoice(
        settings.engine,
        settings.max_batch_size,
        settings.engine_precision,
        settings.tta,
        settings.engine_streams,
    )
    return DeviceEngineLoader(device, choice)


def local_backend(
    settings: Settings,
    batch_observer: BatchObserver | None = None,
    model_observer: ModelObserver | None = None,
) -> LocalBackend:
    """A LocalBackend over ``settings``' store, on this process's device."""
    loader = engine_loader(settings)
    models = ModelManager(ModelStore(settings.model_store), loader, model_observer)
    on_the_cpu = computes_on_the_cpu(settings.engine, loader.device)
    batcher = Batcher(
        models.run_batch,
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        queue_limit=settings.queue_limit,
        observer=batch_observer,
        parallel=models.parallel_batches,
        turns=Turns(settings.decode_turns_ms / 1000) if on_the_cpu else Turns.off(),
    )
    return LocalBackend(models, StoreFollower(models), batcher, settings.poll_interval_s)
