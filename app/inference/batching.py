"""The dynamic batcher: concurrent requests' images gathered into one model call.

One asyncio queue of single images (a request with 5 files contributes 5 items), each item
carrying its own future.  A batch closes when it holds ``max_batch_size`` images or when
``max_batch_delay`` has passed since its first image was queued, whichever comes first; it
closes at once when nothing else is queued or on its way (:meth:`Batcher.images_on_the_way`).
The model runs in dedicated inference threads, so the event loop keeps accepting, decoding and
queueing while a batch computes; as many batches run at once as the engine has streams
(``parallel``, asked before each batch: an OpenVINO engine with streams runs one batch per
stream, each on its share of the cores, and with FLOWERS_ENGINE_STREAMS=auto a batch that runs
alone on every core; other engines one at a time).  With turns on (:mod:`app.inference.turns`,
an engine on the CPU that computes one batch at a time), a batch about to start also waits, up
to ``turns.wait_s`` after its first image, for the decodes under way, and takes their images.
If a batch fails, every waiter in it gets the error and the batcher carries on.  On shutdown,
queued items are finished (up to a drain deadline) or failed: never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from app.inference.turns import Turns

logger = logging.getLogger(__name__)

MAX_PARALLEL = 16  # inference threads at most, whatever an engine asks for

Tag = TypeVar("Tag")


class BatcherError(RuntimeError):
    """Base class of what a waiter can receive instead of a result."""


class Overloaded(BatcherError):
    """The queue is full: the request is refused at once (503 + Retry-After)."""


class TimedOut(BatcherError):
    """The request waited longer than its timeout (504)."""


class BatchFailed(BatcherError):
    """The model call for the batch raised (500)."""


class ShuttingDown(BatcherError):
    """The batcher stopped before the item ran (503)."""


@dataclass(frozen=True)
class Scored(Generic[Tag]):
    """Probabilities and who computed them: a batch's rows from the model function, or one
    image's row for its waiter."""

    probabilities: np.ndarray
    tag: Tag  # e.g. the model version that ran the batch


@dataclass
class _Item(Generic[Tag]):
    image: np.ndarray
    future: asyncio.Future[Scored[Tag]]
    queued_at: float


class BatchObserver(Protocol):
    """What the batcher reports (the service's metrics, a cluster replica's counts)."""

    def queue_depth(self, depth: int) -> None: ...

    def batch_done(self, size: int, seconds: float) -> None: ...


class Unobserved:
    """A BatchObserver that keeps nothing."""

    def queue_depth(self, depth: int) -> None:
        pass

    def batch_done(self, size: int, seconds: float) -> None:
        pass


class Batcher(Generic[Tag]):
    def __init__(
        self,
        run_batch: Callable[[np.ndarray], Scored[Tag]],
        max_batch_size: int,
        max_delay_s: float,
        queue_limit: int,
        observer: BatchObserver | None = None,
        parallel: Callable[[], int] = lambda: 1,
        turns: Turns | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._parallel = parallel
        self.turns = turns or Turns.off()
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.queue_limit = queue_limit
        self._observer: BatchObserver = observer or Unobserved()
        self._queue: asyncio.Queue[_Item[Tag]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], list[_Item[Tag]]] = {}  # batches computing
        self._slot_free = asyncio.Event()  # set when a running batch ends
        self._idle = asyncio.Event()  # set while nothing is queued or running
        self._idle.set()
        self._on_the_way = 0  # requests whose images are still uploading or decoding
        self._accepting = False

    @property
    def depth(self) -> int:
        """Images waiting in the queue (not counting the batch that is running)."""
        return self._queue.qsize()

    @contextlib.contextmanager
    def images_on_the_way(self) -> Iterator[None]:
        """Mark a request whose images will be queued soon (they are uploading or decoding).

        A batch waits for more images (up to the delay) only while such requests exist: an
        idle server runs a lone image at once instead of sitting out the delay.
        """
        self._on_the_way += 1
        try:
            yield
        finally:
            self._on_the_way -= 1

    def start(self) -> None:
        self._accepting = True
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="batcher")

    def ensure_room(self, images: int = 1) -> None:
        """Raise Overloaded (or ShuttingDown) unless ``images`` more fit in the queue now.

        Called before a request's body is read too, so an overloaded server refuses at once
        instead of spending CPU on uploads it would refuse anyway.
        """
        if not self._accepting:
            raise ShuttingDown("the server is shutting down")
        if self.depth + images > self.queue_limit:
            raise Overloaded(
                f"the server is at capacity ({self.depth} images queued, limit {self.queue_limit})"
            )

    async def predict(self, images: Sequence[np.ndarray], timeout_s: float) -> list[Scored[Tag]]:
        """Queue the images (all or none) and wait for their rows, in order."""
        self.ensure_room(len(images))
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [_Item(image, loop.create_future(), now) for image in images]
        for item in items:
            self._queue.put_nowait(item)
        self._idle.clear()
        self._observer.queue_depth(self.depth)
        try:
            async with asyncio.timeout(timeout_s):
                return list(await asyncio.gather(*(item.future for item in items)))
        except TimeoutError:
            raise TimedOut(f"no prediction within the {timeout_s:g}s request timeout") from None
        finally:
            for item in items:
                item.future.cancel()  # no-op when done; otherwise the worker skips it

    async def _work(self) -> None:
        while True:
            while len(self._running) >= max(1, min(MAX_PARALLEL, self._parallel())):
                self._slot_free.clear()
                await self._slot_free.wait()
            batch = await self._next_batch()
            live = [item for item in batch if not item.future.done()]
            if live:
                task = asyncio.get_running_loop().create_task(self._run(live))
                self._running[task] = live
                task.add_done_callback(self._finished)
            elif self._queue.empty() and not self._running:
                self._idle.set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._slot_free.set()
        if self._queue.empty() and not self._running:
            self._idle.set()

    async def _next_batch(self) -> list[_Item[Tag]]:
        batch = [await self._queue.get()]
        try:
            await self._gather(batch)
        except asyncio.CancelledError:  # stop(): these images have left the queue; fail them
            _fail(batch, _stopped())
            raise
        self._observer.queue_depth(self.depth)
        return batch

    async def _gather(self, batch: list[_Item[Tag]]) -> None:
        """Add to ``batch`` (its first image in it) until it is full, the delay has passed or
        nothing more is on its way; then, taking turns, the images of the decodes under way."""
        first = batch[0]
        deadline = first.queued_at + self.max_delay_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._queue.empty() and not self._on_the_way):
                batch.extend(self._take_ready(self.max_batch_size - len(batch)))
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await self._queue.get())
            except TimeoutError:
                break
        if self._taking_turns():
            await self._join_the_decodes(batch, first.queued_at + self.turns.wait_s)

    async def _join_the_decodes(self, batch: list[_Item[Tag]], deadline: float) -> None:
        """Turns on: before the batch starts, take the images whose decodes are under way, as
        they are queued, until none is left, the batch is full or ``deadline`` has passed."""
        while self.turns.pending and len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            queued = asyncio.ensure_future(self._queue.get())
            decoded = asyncio.ensure_future(self.turns.no_decodes())
            try:
                await asyncio.wait(
                    (queued, decoded), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                decoded.cancel()
                if queued.done() and not queued.cancelled():
                    batch.append(queued.result())
                else:
                    queued.cancel()
        batch.extend(self._take_ready(self.max_batch_size - len(batch)))

    def _take_ready(self, limit: int) -> list[_Item[Tag]]:
        ready: list[_Item[Tag]] = []
        while len(ready) < limit and not self._queue.empty():
            ready.append(self._queue.get_nowait())
        return ready

    async def _run(self, batch: list[_Item[Tag]]) -> None:
        images = np.stack([item.image for item in batch])
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            output = await loop.run_in_executor(self._executor, self._computing, images)
        except Exception as error:  # every waiter must hear about it; the batcher goes on
            logger.exception("inference failed for a batch of %d images", len(batch))
            _fail(batch, BatchFailed(f"inference failed: {type(error).__name__}: {error}"))
            return
        self._observer.batch_done(len(batch), time.monotonic() - started)
        for row, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(Scored(output.probabilities[row], output.tag))

    def _taking_turns(self) -> bool:
        """Turns on, and the engine computes one batch at a time: with streams, a batch that
        waits for the decodes leaves its stream's core idle (on 2 cores, INT8, 16 clients,
        FLOWERS_ENGINE_STREAMS=auto and batches of 4 served a fifth less with turns)."""
        return self.turns.on and self._parallel() == 1

    def _computing(self, images: np.ndarray) -> Scored[Tag]:
        """In an inference thread: the model call, while the decodes wait their turn."""
        with self.turns.computing() if self._taking_turns() else contextlib.nullcontext():
            return self._run_batch(images)

    async def stop(self, drain_s: float) -> None:
        """Stop accepting; let queued images finish for up to ``drain_s``; fail the rest."""
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await self._idle.wait()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        stopped = _stopped()
        running = list(self._running)
        _fail([item for task in running for item in self._running[task]], stopped)
        _fail(self._take_ready(self.depth), stopped)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _stopped() -> ShuttingDown:
    return ShuttingDown("the server shut down before this image ran")


def _fail(batch: Sequence[_Item[Tag]], error: BatcherError) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
