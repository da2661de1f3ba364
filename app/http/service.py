"""The objects one running app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.dataset.labelling import DatasetNotConfigured, DatasetWriter
from app.inference.admission import Admission
from app.inference.backend import InferenceBackend
from app.inference.predictor import Predictor
from app.jobs.runner import JobControl
from app.observability.metrics import Metrics
from app.store.versions import ModelStore


@dataclass
class Service:
    settings: Settings
    admission: Admission
    store: ModelStore
    metrics: Metrics
    backend: InferenceBackend
    predictor: Predictor
    jobs: JobControl
    writer: DatasetWriter | None

    async def start(self) -> None:
        await self.jobs.recover()
        await self.backend.start()

    async def stop(self) -> None:
        await self.jobs.close()
        await self.backend.stop(self.settings.shutdown_drain_s)
        self.predictor.close()

    def dataset(self) -> DatasetWriter:
        if self.writer is None:
            raise DatasetNotConfigured(
                "no dataset folder is configured: set FLOWERS_DATA_DIR to a folder of class "
                "sub-folders (it is created on the first upload)"
            )
        return self.writer
