"""Scoring in this process: a version of the store in the engine the server would choose, over
images decoded by the server's own preprocessing (:func:`app.imaging.preprocess`), with the
server's limits on a file's bytes and pixels."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app import imaging
from app.config import Settings
from app.scoring.inputs import read_capped
from app.scoring.results import Result, Scored, ScoringError, Unreadable
from app.store.versions import ModelStore, StoreError, Version

if TYPE_CHECKING:  # a type only: engines (TensorFlow, OpenVINO) load once a version is chosen
    from app.ml.engines import Engine

logger = logging.getLogger(__name__)


class LocalScorer:
    def __init__(self, settings: Settings, number: int | None = None) -> None:
        store = ModelStore(settings.model_store)
        version = _chosen(store, number)
        self.engine = _load(store, version, settings)
        self.classes = list(self.engine.classes)
        self.batch_size = settings.max_batch_size
        self._max_bytes = settings.max_upload_bytes
        self._max_pixels = settings.max_image_pixels
        self._decoders = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)), "decode")

    def describe(self) -> str:
        return f"{self.engine.name} {self.engine.precision} in this process"

    def score(self, paths: list[Path]) -> list[Result]:
        decoded = list(self._decoders.map(self._decode, paths))
        images = [image for image in decoded if isinstance(image, np.ndarray)]
        rows = iter(self.engine.predict(np.stack(images)).tolist() if images else [])
        version = str(self.engine.version)
        return [
            Scored(path, version, tuple(next(rows))) if isinstance(image, np.ndarray) else image
            for path, image in zip(paths, decoded, strict=True)
        ]

    def close(self) -> None:
        self._decoders.shutdown(cancel_futures=True)

    def _decode(self, path: Path) -> np.ndarray | Unreadable:
        data = read_capped(path, self._max_bytes)
        if isinstance(data, Unreadable):
            return data
        try:
            return imaging.preprocess(data, max_pixels=self._max_pixels)
        except imaging.ImageError as error:
            return Unreadable(path, str(error))


def _chosen(store: ModelStore, number: int | None) -> Version:
    try:
        version = store.active() if number is None else store.get(number)
    except StoreError as error:
        raise ScoringError(str(error)) from None
    if version is None:
        raise ScoringError(
            f"the store {store.root} holds no usable version: train one with "
            "`python -m app.train --data-dir PATH`, or name another store with --model-store"
        )
    return version


def _load(store: ModelStore, version: Version, settings: Settings) -> Engine:
    from app.inference.loading import engine_loader  # TensorFlow: only once there is a version

    try:
        hold: Path | None = store.hold(version.number)  # no deletion while its files are read
    except StoreError as error:
        raise ScoringError(str(error)) from None
    except OSError as error:  # a read-only store: read it unheld
        logger.debug("version %d read without a hold: %s", version.number, error)
        hold = None
    try:
        return engine_loader(settings).load(version)
    except (StoreError, RuntimeError, OSError, ValueError) as error:  # EngineError among them
        raise ScoringError(f"version {version.number} cannot be loaded: {error}") from None
    finally:
        if hold is not None:
            store.holds.release(hold)
