"""The data plane of every inference route: admit a request, decode its images off the loop as
they arrive, batch them with everyone else's, answer from one version.

Where the batcher and the engine run is the backend's business (:mod:`app.inference.backend`):
in this process, or in a Ray Serve Model replica.

/predict (multipart) and the Open Inference Protocol (REST and gRPC) differ only in how images
arrive and how the answer is shaped: both call :meth:`Predictor.run`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app import imaging
from app.inference.admission import Admission
from app.inference.backend import InferenceBackend


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


@dataclass(frozen=True)
class StartedImage:
    """One image of a request, named for error messages, whose decoding has started."""

    name: str
    decoding: asyncio.Future[np.ndarray]


StartDecoding = Callable[[str, bytes], StartedImage]
# Counts a body's chunks against the memory budget as they pass (see app.inference.admission).
Meter = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]
# Reads a request's images, metering its body, calling StartDecoding on each image as soon as
# it is complete.
ReceiveImages = Callable[[StartDecoding, Meter], Awaitable[Sequence[StartedImage]]]


@dataclass(frozen=True)
class Classified:
    """Every image of one request and the probabilities of each, all from one version."""

    names: list[str]
    probabilities: np.ndarray  # (images, classes), in request order
    version: int  # the version that computed every row
    classes: list[str]  # that version's classes, in output order

    def predictions(self, top_k: int | None = None) -> Predictions:
        rows = zip(self.names, self.probabilities, strict=True)
        classes = self.classes
        return Predictions(
            self.version, [_prediction(name, row, classes, top_k) for name, row in rows]
        )


class Predictor:
    def __init__(
        self,
        backend: InferenceBackend,
        admission: Admission,
        max_image_pixels: int,
        timeout_s: float,
    ) -> None:
        self.backend = backend
        self.admission = admission
        self.max_image_pixels = max_image_pixels
        self.timeout_s = timeout_s
        workers = max(2, os.cpu_count() or 2)
        self._decoder = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")

    async def run(self, receive: ReceiveImages, declared_bytes: int | None = None) -> Classified:
        """One request from admission to answer, whatever protocol its images came in on.

        Refused at once (503) when no model serves, the queue is full, or the memory budget for
        bodies in flight cannot hold ``declared_bytes``, before any body is read; images decode
        while later ones are still arriving; one version answers them all.
        """
        backend = self.backend
        backend.require()
        backend.ensure_room()
        with self.admission.admit(declared_bytes) as ticket, backend.arriving():
            started = await receive(self.start_decoding, ticket.counted)
            images = await self.decoded([image.decoding for image in started])
        inference = await backend.infer(images, self.timeout_s)
        names = [image.name for image in started]
        return Classified(names, inference.probabilities, inference.version, inference.classes)

    def start_decoding(self, name: str, data: bytes) -> StartedImage:
        return StartedImage(name, self.decode_later(name, data))

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
