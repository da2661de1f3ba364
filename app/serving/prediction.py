"""The data plane of /predict: decode uploads off the loop, batch them, shape the answer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app import imaging
from app.serving.inference import InferenceBackend


class ImageRejected(ValueError):
    """One uploaded file cannot be classified; ``error`` says why (and sets the status)."""

    def __init__(self, filename: str, error: imaging.ImageError) -> None:
        super().__init__(f"{filename}: {error}")
        self.filename = filename
        self.error = error


@dataclass(frozen=True)
class Prediction:
    filename: str
    class_name: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Predictions:
    model_version: int
    predictions: list[Prediction]


class Predictor:
    def __init__(self, backend: InferenceBackend, max_image_pixels: int, timeout_s: float) -> None:
        self.backend = backend
        self.max_image_pixels = max_image_pixels
        self.timeout_s = timeout_s
        workers = max(2, os.cpu_count() or 2)
        self._decoder = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")

    def decode_later(self, filename: str, data: bytes) -> asyncio.Future[np.ndarray]:
        """Start decoding one upload in the decode pool; the future raises ImageRejected."""
        loop = asyncio.get_running_loop()
        return asyncio.wrap_future(self._decoder.submit(self._decode, filename, data), loop=loop)

    def _decode(self, filename: str, data: bytes) -> np.ndarray:
        try:
            return imaging.preprocess(data, max_pixels=self.max_image_pixels)
        except imaging.ImageError as error:
            raise ImageRejected(filename, error) from None

    async def decoded(self, decoding: Sequence[asyncio.Future[np.ndarray]]) -> list[np.ndarray]:
        """Wait for every decode; the first bad file fails the request (the rest are dropped)."""
        try:
            return list(await asyncio.gather(*decoding))
        finally:
            for future in decoding:
                future.cancel()

    async def classify(
        self, filenames: Sequence[str], images: list[np.ndarray], top_k: int | None = None
    ) -> Predictions:
        """Batch the images with everyone else's; every one answered by the same version."""
        inference = await self.backend.infer(images, self.timeout_s)
        return Predictions(
            inference.version,
            [
                _prediction(name, row, inference.classes, top_k)
                for name, row in zip(filenames, inference.probabilities, strict=True)
            ],
        )

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)


def _prediction(
    filename: str, probabilities: np.ndarray, classes: list[str], top_k: int | None
) -> Prediction:
    values: list[float] = probabilities.tolist()  # plain floats: cheaper than numpy for ~5
    ranked = sorted(range(len(values)), key=lambda i: -values[i])
    shown = ranked[:top_k] if top_k else range(len(values))  # all: in the model's class order
    best = ranked[0]
    return Prediction(
        filename=filename,
        class_name=classes[best],
        confidence=values[best],
        probabilities={classes[i]: values[i] for i in shown},
    )
