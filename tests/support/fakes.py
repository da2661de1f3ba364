"""Fakes for the unit tests of the data plane, where the test is not about the model: versions
whose model file is never loaded, engines that answer at once, a backend without a batcher."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator, Sequence

import numpy as np

from app.inference.backend import Inference
from app.inference.batching import Overloaded
from app.inference.manager import NoModel, ServingModel
from app.inference.turns import Turns
from app.store.metadata import VersionMetadata
from app.store.versions import MODEL_FILE, ModelStore, Version


def fake_version(store: ModelStore, classes: list[str], activate: bool = True) -> Version:
    """A complete version whose model.keras is a valid but empty archive (never loaded)."""
    with store.staging() as folder:
        with zipfile.ZipFile(folder / MODEL_FILE, "w") as archive:
            archive.writestr("config.json", "{}")
        version = store.publish(folder, {"classes": classes, "metrics": {"val_accuracy": 0.5}})
    if activate:
        store.set_active(version.number)
    return version


class FakeEngine:
    """Answers every image with probabilities that name the version: row[i] = (i + 1) * version."""

    name = "fake"
    precision = "f32"
    float_precision = "f32"
    batch_sizes = (1, 2, 4)
    parallel_batches = 1

    def __init__(self, version: int, classes: list[str]) -> None:
        self.version = version
        self.classes = classes

    def predict(self, images: np.ndarray) -> np.ndarray:
        row = np.arange(1, len(self.classes) + 1, dtype=np.float32) * self.version
        return np.tile(row / row.sum(), (len(images), 1))

    def warm_up(self) -> None:
        pass


class FakeLoader:
    """Loads versions into FakeEngines; ``broken`` versions fail to load."""

    device_name = "CPU (fake)"

    def __init__(self, broken: Sequence[int] = ()) -> None:
        self.broken = set(broken)
        self.loaded: list[int] = []

    def load(self, version: Version) -> FakeEngine:
        if version.number in self.broken:
            raise RuntimeError(f"version {version.number} is broken")
        self.loaded.append(version.number)
        return FakeEngine(version.number, version.classes)


def serving_model(number: int = 1, classes: list[str] | None = None) -> ServingModel:
    classes = classes or ["cats", "dogs"]
    return ServingModel(
        number=number,
        classes=classes,
        metadata=VersionMetadata(version=number, classes=classes),
        loaded_at="2026-12-04T00:00:00+00:00",
        engine="fake",
        precision="f32",
        float_precision="f32",
        device="CPU (fake)",
        batch_sizes=(1, 2, 4),
    )


class FakeBackend:
    """An InferenceBackend without a batcher: it records what it is asked and how it was asked."""

    def __init__(self, model: ServingModel | None = None, room: int = 100) -> None:
        self.model = model
        self.room = room
        self.on_the_way = 0
        self.turns = Turns.off()
        self.calls: list[tuple[int, int]] = []  # (images, requests on the way) per infer

    async def start(self) -> None:
        pass

    async def stop(self, drain_s: float) -> None:
        pass

    def serving(self) -> ServingModel | None:
        return self.model

    def ready_model(self) -> ServingModel:
        if self.model is None:
            raise NoModel("no model is loaded")
        return self.model

    def ensure_room(self, images: int = 1) -> None:
        if images > self.room:
            raise Overloaded("the server is at capacity")

    @contextlib.contextmanager
    def images_on_the_way(self) -> Iterator[None]:
        self.on_the_way += 1
        try:
            yield
        finally:
            self.on_the_way -= 1

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference:
        model = self.ready_model()
        self.calls.append((len(images), self.on_the_way))
        classes = model.classes
        rows = np.stack([np.full(len(classes), float(image.mean())) for image in images])
        return Inference(model.number, classes, rows)
