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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app import imaging
from app.training.dataset import Dataset, load_images

logger = logging.getLogger(__name__)

Extractor = Callable[[np.ndarray], np.ndarray]
T = TypeVar("T")
Progress = Callable[[int, int], None]


class FeatureCache:
    """Arrays on disk, one per image (feature vectors, or float16 activation maps); a damaged
    entry, or one of another shape or type, reads as a miss and is recomputed."""

    def __init__(
        self,
        root: Path,
        backbone_digest: str,
        dim: int | tuple[int, ...],
        name: str = "",
        dtype: str = "float32",
    ) -> None:
        self.folder = Path(root) / imaging.PREPROCESSING_VERSION / backbone_digest
        if name:
            self.folder /= name
        self.shape = (dim,) if isinstance(dim, int) else tuple(dim)
        self.dtype = np.dtype(dtype)

    @property
    def dim(self) -> int:
        return self.shape[0]

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            vector = np.load(self._path(digest), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vector if vector.shape == self.shape and vector.dtype == self.dtype else None

    def put(self, digest: str, vector: np.ndarray) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, vector.astype(self.dtype), allow_pickle=False)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, path)  # no fsync: a torn entry after a crash is just a cache miss


@dataclass(frozen=True)
class View:
    """One feature view of every photo: how it is computed from a decoded batch, and its cache."""

    extract: Extractor
    cache: FeatureCache


def mirrored(extract: Callable[[np.ndarray], T]) -> Callable[[np.ndarray], T]:
    """The same features of the photos' mirror images (left and right swapped)."""
    return lambda images: extract(np.ascontiguousarray(images[:, :, ::-1, :]))


def shared_outputs(
    extract: Callable[[np.ndarray], Sequence[np.ndarray]], count: int
) -> list[Extractor]:
    """One extractor per output of ``extract``, sharing its pass: views of one decoded batch (the
    same array, as :func:`featurize_views` hands every view) compute it once between them."""
    # the batch last seen (held, so that no other array can take its id) and its outputs
    last: list[Any] = [None, ()]

    def output(index: int) -> Extractor:
        def extract_output(images: np.ndarray) -> np.ndarray:
            if last[0] is not images:
                last[:] = [images, extract(images)]
            return np.asarray(last[1][index])

        return extract_output

    return [output(index) for index in range(count)]


def featurize_views(
    dataset: Dataset,
    views: Sequence[View],
    batch_size: int = 32,
    on_progress: Progress | None = None,
) -> tuple[list[np.ndarray], list[int], int]:
    """Every view's features for every loadable sample: (one (N, dim) array per view, kept
    indices, how many samples were computed).  A sample missing from any view's cache is decoded
    once and computed for every view; unreadable images are skipped (``dataset.skipped``).

    Each view's array is allocated once and filled in place: activation maps run to gigabytes,
    and stacking them from per-image arrays would hold them twice."""
    total = len(dataset.samples)
    arrays = [np.empty((total, *view.cache.shape), view.cache.dtype) for view in views]
    present = np.zeros(total, bool)
    missing: list[int] = []
    for index, sample in enumerate(dataset.samples):
        vectors = [view.cache.get(sample.digest) for view in views]
        if any(vector is None for vector in vectors):
            missing.append(index)
            continue
        for array, vector in zip(arrays, vectors, strict=True):
            array[index] = vector
        present[index] = True
    done = total - len(missing)
    if on_progress is not None:
        on_progress(done, total)
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        present[_compute_views(dataset, chunk, views, arrays)] = True
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, total)
    kept = np.flatnonzero(present).tolist()
    computed = int(present[missing].sum()) if missing else 0
    return [_compacted(array, kept) for array in arrays], kept, computed


def _compute_views(
    dataset: Dataset, chunk: Sequence[int], views: Sequence[View], arrays: Sequence[np.ndarray]
) -> list[int]:
    """Decode ``chunk`` once, compute and cache every view of it, write the rows of ``arrays``;
    the indices that could be decoded."""
    images, loaded = load_images(dataset, chunk)
    if not loaded:
        return []
    for view, array in zip(views, arrays, strict=True):
        # in the cache's type: a cold run hands on exactly what a warm run reads back
        batch = view.extract(images).astype(view.cache.dtype, copy=False)
        for index, vector in zip(loaded, batch, strict=True):
            view.cache.put(dataset.samples[index].digest, vector)
        array[loaded] = batch
    return list(loaded)


def _compacted(array: np.ndarray, kept: list[int]) -> np.ndarray:
    """The rows of ``kept`` (ascending), moved to the front in place: no second copy."""
    if len(kept) == len(array):
        return array
    for position, index in enumerate(kept):
        array[position] = array[index]
    return array[: len(kept)]


def featurize(
    dataset: Dataset,
    extract: Extractor,
    cache: FeatureCache,
    batch_size: int = 32,
    on_progress: Progress | None = None,
) -> tuple[np.ndarray, list[int], int]:
    """One view: (features (N, dim), kept indices, computed count)."""
    arrays, kept, computed = featurize_views(
        dataset, [View(extract, cache)], batch_size, on_progress
    )
    return arrays[0], kept, computed
