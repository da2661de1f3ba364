"""Backbone features computed once per image and cached on disk.

The backbone is frozen, so an image's 2048-d feature vector only changes when the image bytes,
the preprocessing or the backbone weights change.  The cache key is exactly that triple:
``<root>/<preprocessing version>/<backbone weights digest>/<sha256[:2]>/<sha256>.npy``.
A retrain after adding 20 images therefore computes 20 features.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app import imaging
from app.training.dataset import Dataset, load_images

logger = logging.getLogger(__name__)

Extractor = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


class FeatureCache:
    """Feature vectors on disk; a damaged entry reads as a miss and is recomputed."""

    def __init__(self, root: Path, backbone_digest: str, dim: int) -> None:
        self.folder = Path(root) / imaging.PREPROCESSING_VERSION / backbone_digest
        self.dim = dim

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            vector = np.load(self._path(digest), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vector if vector.shape == (self.dim,) and vector.dtype == np.float32 else None

    def put(self, digest: str, vector: np.ndarray) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, vector.astype(np.float32), allow_pickle=False)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, path)  # no fsync: a torn entry after a crash is just a cache miss


def featurize(
    dataset: Dataset,
    extract: Extractor,
    cache: FeatureCache,
    batch_size: int = 32,
    on_progress: Progress | None = None,
) -> tuple[np.ndarray, list[int], int]:
    """Features for every loadable sample: (features (N, dim), kept indices, computed count).

    Cached vectors are read; the rest are decoded and run through ``extract`` in batches.
    Unreadable images are skipped (recorded in ``dataset.skipped``), never fatal.
    """
    vectors: dict[int, np.ndarray] = {}
    missing: list[int] = []
    for index, sample in enumerate(dataset.samples):
        cached = cache.get(sample.digest)
        if cached is None:
            missing.append(index)
        else:
            vectors[index] = cached
    total = len(dataset.samples)
    done = len(vectors)
    if on_progress is not None:
        on_progress(done, total)
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        vectors.update(_compute(dataset, chunk, extract, cache))
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, total)
    kept = sorted(vectors)
    features = np.stack([vectors[i] for i in kept]) if kept else np.zeros((0, cache.dim), "f4")
    return features, kept, sum(1 for index in missing if index in vectors)


def _compute(
    dataset: Dataset, chunk: Sequence[int], extract: Extractor, cache: FeatureCache
) -> dict[int, np.ndarray]:
    images, loaded = load_images(dataset, chunk)
    if not loaded:
        return {}
    batch = extract(images)
    for index, vector in zip(loaded, batch, strict=True):
        cache.put(dataset.samples[index].digest, vector)
    return dict(zip(loaded, batch, strict=True))
