"""Scoring in this process: the store's active version (or one named) in the server's engine,
over the server's preprocessing and limits, with a tiny real Keras model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import imaging
from app.config import Settings
from app.scoring.local import LocalScorer
from app.scoring.results import Scored, ScoringError, Unreadable
from app.store.versions import ModelStore
from tests.support.modelfactory import COLOURS, publish_tiny

CLASSES = list(COLOURS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("store"))
    publish_tiny(store, CLASSES, seed=1)
    publish_tiny(store, CLASSES, seed=2, activate=False)
    store.set_active(1)
    return store


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = []
    for name, colour in COLOURS.items():
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (64, 48), colour).save(path)
        paths.append(path)
    return paths


def _settings(store: ModelStore, **overrides: object) -> Settings:
    return Settings(model_store=store.root, engine="tensorflow", **overrides)  # type: ignore[arg-type]


def test_the_active_version_scores_what_its_engine_computes(
    store: ModelStore, photos: list[Path]
) -> None:
    scorer = LocalScorer(_settings(store))
    results = scorer.score(photos)
    images = np.stack([imaging.preprocess(path.read_bytes()) for path in photos])
    expected = scorer.engine.predict(images)
    assert [r.version for r in results if isinstance(r, Scored)] == ["1", "1", "1"]
    got = np.array([r.probabilities for r in results if isinstance(r, Scored)])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert scorer.classes == CLASSES
    assert scorer.describe() == "tensorflow f32 in this process"
    scorer.close()


def test_a_version_can_be_named(store: ModelStore, photos: list[Path]) -> None:
    scorer = LocalScorer(_settings(store), number=2)
    assert {r.version for r in scorer.score(photos) if isinstance(r, Scored)} == {"2"}
    scorer.close()


def test_unreadable_files_are_results_in_place(
    store: ModelStore, photos: list[Path], tmp_path: Path
) -> None:
    text, big, gone = tmp_path / "notes.jpg", tmp_path / "big.png", tmp_path / "gone.jpg"
    text.write_text("not an image")
    Image.new("RGB", (100, 100)).save(big)
    scorer = LocalScorer(_settings(store, max_image_pixels=5_000))
    results = scorer.score([text, photos[0], big, gone])
    assert isinstance(results[1], Scored)
    assert [type(r) for r in results] == [Unreadable, Scored, Unreadable, Unreadable]
    reasons = [r.reason for r in results if isinstance(r, Unreadable)]
    assert "not a decodable image" in reasons[0]
    assert reasons[1] == "the image is 100x100 = 10,000 pixels; the limit is 5,000 pixels"
    assert reasons[2] == "No such file or directory"
    scorer.close()


def test_a_file_over_the_upload_limit_is_not_read_whole(store: ModelStore, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 3000)
    scorer = LocalScorer(_settings(store, max_upload_bytes=2048))
    assert scorer.score([big]) == [
        Unreadable(big, "larger than 2,048 bytes (FLOWERS_MAX_UPLOAD_BYTES)")
    ]
    scorer.close()


def test_an_empty_store_says_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="holds no usable version: train one"):
        LocalScorer(Settings(model_store=tmp_path))


def test_a_missing_version_is_named(store: ModelStore) -> None:
    with pytest.raises(ScoringError, match="version 9 does not exist"):
        LocalScorer(_settings(store), number=9)


def test_loading_leaves_no_hold_behind(store: ModelStore) -> None:
    LocalScorer(_settings(store)).close()
    assert list(store.holds.folder.iterdir()) == []
