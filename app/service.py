"""The objects one running app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from app.batching import Batcher
from app.config import Settings
from app.jobs import JobRunner
from app.labelling import DatasetNotConfigured, DatasetWriter
from app.metrics import Metrics
from app.prediction import Predictor
from app.serving import LoadedModel, ModelManager
from app.store import ModelStore


@dataclass
class Service:
    settings: Settings
    store: ModelStore
    metrics: Metrics
    models: ModelManager
    batcher: Batcher[LoadedModel]
    predictor: Predictor
    jobs: JobRunner
    writer: DatasetWriter | None

    def dataset(self) -> DatasetWriter:
        if self.writer is None:
            raise DatasetNotConfigured(
                "no dataset folder is configured: set FLOWERS_DATA_DIR to a folder of class "
                "sub-folders (it is created on the first upload)"
            )
        return self.writer
