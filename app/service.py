"""The objects one running app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from app.batching import Batcher
from app.config import Settings
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
