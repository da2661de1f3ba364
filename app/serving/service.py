"""The objects one running app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.serving.admission import Admission
from app.serving.batching import Batcher
from app.serving.follower import StoreFollower
from app.serving.jobs import JobRunner
from app.serving.labelling import DatasetNotConfigured, DatasetWriter
from app.serving.metrics import Metrics
from app.serving.models import LoadedModel, ModelManager
from app.serving.prediction import Predictor
from app.store import ModelStore


@dataclass
class Service:
    settings: Settings
    admission: Admission
    store: ModelStore
    metrics: Metrics
    models: ModelManager
    follower: StoreFollower
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
