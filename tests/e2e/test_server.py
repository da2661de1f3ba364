"""The real server: uvicorn in a subprocess on a free port, real photos, a model trained on them."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest

from app import imaging
from app.ml import network
from app.store.versions import ModelStore
from tests.support.servers import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(flowers_store: Path) -> Iterator[str]:
    env = {"FLOWERS_MODEL_STORE": str(flowers_store), "FLOWERS_ENGINE": "tensorflow"}
    uvicorn = [sys.executable, "-m", "uvicorn", "app.main:app"]  # the README's command
    with running_server(env, command=uvicorn, capture=True, stop=False) as server:
        yield server.base
        server.process.terminate()
        output, _ = server.process.communicate(timeout=60)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert server.process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def _photos(flowers_dev: Path, per_class: int) -> list[tuple[str, Path]]:
    chosen = []
    for folder in sorted(p for p in flowers_dev.iterdir() if p.is_dir()):
        chosen += [(folder.name, photo) for photo in sorted(folder.iterdir())[-per_class:]]
    return chosen


def test_real_photos_are_classified_by_the_real_server(server: str, flowers_dev: Path) -> None:
    photos = _photos(flowers_dev, per_class=3)
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for _, p in photos]
    response = httpx.post(f"{server}/predict", files=files, timeout=120)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == [p.name for _, p in photos]
    correct = sum(
        p["class_name"] == truth for p, (truth, _) in zip(predictions, photos, strict=True)
    )
    assert correct / len(photos) >= 0.85, predictions


def test_served_probabilities_equal_the_saved_model_on_preprocessed_bytes(
    server: str, flowers_dev: Path, flowers_store: Path
) -> None:
    store = ModelStore(flowers_store)
    model = network.load(store.get(store.active().number).model_path)  # type: ignore[union-attr]
    for truth, photo in _photos(flowers_dev, per_class=1):
        data = photo.read_bytes()
        response = httpx.post(
            f"{server}/predict", files={"file": (photo.name, data, "image/jpeg")}, timeout=60
        )
        served = np.array(list(response.json()["predictions"][0]["probabilities"].values()))
        direct = np.asarray(model(imaging.preprocess(data)[None].astype(np.float32)))[0]
        assert np.allclose(served, direct, atol=1e-5), (truth, served, direct)


def test_classes_and_model_of_the_real_server(server: str) -> None:
    classes = httpx.get(f"{server}/classes").json()
    assert classes["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    model = httpx.get(f"{server}/model").json()
    assert model["val_accuracy"] >= 0.8
    assert model["device"] == "CPU"
