"""The data plane of every inference route: admit a request, decode its images off the loop as
they arrive, batch them with everyone else's, answer from one version.

Every protocol's request reads the same, as plain calls (``app.http.predict`` is the shortest)::

    with predictor.admit(declared_bytes) as admitted:   # 503 at once when there is no room
        # the protocol reads its body through admitted.meter and, for each complete image,
        images.append(admitted.start_decoding(name, data))
        inference = await admitted.classify(images)      # decoded, then batched and run

Where the batcher and the engine run is the backend's business (:mod:`app.inference.backend`):
in this process, or in a Ray Serve Model replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app import imaging
from app.inference.admission import Admission, Ticket
from app.inference.backend import Inference, InferenceBackend
from app.inference.batching import TimedOut
from app.inference.decoding import DecodeBudget


class ImageRejected(ValueError):
    """One uploaded file cannot be classified; ``error`` says why (and sets the status)."""

    def __init__(self, filename: str, error: imaging.ImageError) -> None:
        super().__init__(f"{filename}: {error}")
        self.filename = filename
        self.error = error


@dataclass(frozen=True)
class DecodingImage:
    """One image of a request, named for error messages, whose decoding has started."""

    name: str
    decoding: asyncio.Future[np.ndarray]


class Predictor:
    def __init__(
        self,
        backend: InferenceBackend,
        admission: Admission,
        decoding: DecodeBudget,
        max_image_pixels: int,
        timeout_s: float,
    ) -> None:
        self.backend = backend
        self.admission = admission
        self.decoding = decoding
        self.max_image_pixels = max_image_pixels
        self.timeout_s = timeout_s
        workers = max(2, os.cpu_count() or 2)
        self._decoder = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")

    @contextlib.contextmanager
    def admit(self, declared_bytes: int | None = None, held_bytes: int = 0) -> Iterator[Admitted]:
        """Admit one request until the block ends, or refuse it at once (503): no model serves,
        the queue is full, or the memory budget for bodies in flight cannot hold
        ``declared_bytes``.  Nothing of the body has been read when it refuses; ``held_bytes``
        are a body already in memory (a gRPC message), counted from the start."""
        self.backend.ready_model()
        self.backend.ensure_room()
        with contextlib.ExitStack() as holding:
            ticket = holding.enter_context(self.admission.admit(declared_bytes, held_bytes))
            holding.enter_context(self.backend.images_on_the_way())
            deadline = asyncio.get_running_loop().time() + self.timeout_s
            admitted = Admitted(self, ticket, holding.pop_all(), deadline)
        try:
            yield admitted
        finally:
            admitted.release()

    async def wait_for_room(self, body_bytes: int, timeout_s: float) -> None:
        """Wait until a body of ``body_bytes`` fits in the upload budget (503 past
        ``timeout_s``); admit it before the next await.  Its images are on their way meanwhile,
        as a body's are while it uploads (a batch forming waits for them, up to its delay): at
        the default limits gRPC reads one message at a time (each may be 16 images of 10 MB)."""
        with self.backend.images_on_the_way():
            await self.admission.wait_for_room(body_bytes, timeout_s)

    def decode_cost(self, filename: str, data: bytes) -> int:
        """What decoding an upload will cost, from its header (ImageRejected for a bad one)."""
        try:
            return imaging.decode_cost(data, max_pixels=self.max_image_pixels)
        except imaging.ImageError as error:
            raise ImageRejected(filename, error) from None

    def decode_later(
        self, filename: str, data: bytes, cost: int, request_cost: int
    ) -> asyncio.Future[np.ndarray]:
        """Start decoding one upload in the decode pool, its ``cost`` counted against the decode
        budget until it is decoded (or dropped); the future raises ImageRejected."""
        self.decoding.take(cost, request_cost)
        loop = asyncio.get_running_loop()
        work = self._decoder.submit(self._decode, filename, data)
        work.add_done_callback(lambda _: _call_soon(loop, self.decoding.give_back, cost))
        return asyncio.wrap_future(work, loop=loop)

    def _decode(self, filename: str, data: bytes) -> np.ndarray:
        self.backend.turns.wait_for_batches()
        try:
            return imaging.preprocess(data, max_pixels=self.max_image_pixels)
        except imaging.ImageError as error:
            raise ImageRejected(filename, error) from None

    async def infer(self, images: Sequence[np.ndarray], timeout_s: float) -> Inference:
        """Decoded images to their probabilities, all from one version (504 past the timeout)."""
        return await self.backend.infer(images, timeout_s)

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)


def _call_soon(
    loop: asyncio.AbstractEventLoop, function: Callable[[int], None], value: int
) -> None:
    """From a decode thread: call ``function`` on the loop (not once it has closed: shutdown)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(function, value)


class Admitted:
    """One admitted request: its body counted against the memory budget as it arrives, its
    images decoded as soon as each is complete.  The admission ends once every image is
    decoded, before they wait for the model."""

    def __init__(
        self, predictor: Predictor, ticket: Ticket, held: contextlib.ExitStack, deadline: float
    ) -> None:
        self._predictor = predictor
        self._ticket = ticket
        self._held = held
        self._deadline = deadline  # of the whole request, decoding included (loop time)
        self._started: list[DecodingImage] = []
        self._cost = 0  # what this request's images cost to decode, so far

    def meter(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks, each counted against the budget before it is passed on."""
        return self._ticket.counted(body)

    def keep(self, held_bytes: int) -> None:
        """Keep only ``held_bytes`` of what was reserved for a body of unknown size, now read."""
        self._ticket.shrink_to(held_bytes)

    def start_decoding(self, name: str, data: bytes) -> DecodingImage:
        """Queue one image for decoding: refused at once (413, 503) when the decode work it
        costs does not fit in its request's share or in what the budget has left."""
        cost = self._predictor.decode_cost(name, data)
        self._cost += cost
        image = DecodingImage(name, self._predictor.decode_later(name, data, cost, self._cost))
        self._predictor.backend.turns.image_decoding()
        self._started.append(image)
        return image

    async def classify(self, images: Sequence[DecodingImage]) -> Inference:
        """Wait for every decode (the first bad file fails the request), end the admission,
        then classify them all with one version: all within the request's deadline (504)."""
        try:
            async with asyncio.timeout_at(self._deadline):
                decoded = list(await asyncio.gather(*(image.decoding for image in images)))
        except TimeoutError:
            raise TimedOut(
                f"no prediction within the {self._predictor.timeout_s:g}s request timeout"
            ) from None
        self.release()
        remaining = self._deadline - asyncio.get_running_loop().time()
        return await self._predictor.infer(decoded, max(remaining, 0.001))

    def release(self) -> None:
        """End the admission (once); decodes not waited for are dropped.  Its images are
        queued for the model next, in the same step of the event loop, or dropped."""
        turns = self._predictor.backend.turns
        for image in self._started:
            image.decoding.cancel()
            turns.image_done()
        self._started = []
        self._held.close()
