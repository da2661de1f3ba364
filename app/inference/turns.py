"""Decodes and batches take turns on the CPU's cores, instead of slowing each other down.

An engine that computes on the CPU splits each layer of a batch across every core and waits at
the end of the layer for the slowest share; a JPEG decode running beside it takes one of those
cores, and costs the batch more than its own time (``python -m bench.contention``: one thread
decoding flat out made a batch 1.85x slower on 2 cores).  So, while turns are on:

- a decode waits while a batch computes (:meth:`Turns.wait_for_batches`, in a decode thread), for
  at most :data:`DECODE_WAIT_S`, so that a batch that hangs cannot hold the decodes back for long;
- a batch about to start waits for the decodes under way (:meth:`Turns.no_decodes`, in the
  batcher), for at most ``wait_s`` after its first image was queued: their images join this batch
  instead of being decoded beside it.

The HTTP work on the event loop still runs beside a batch.  With the engine on a GPU turns are
off (:meth:`Turns.off`): the GPU computes while the cores decode; with OpenVINO's streams the
batcher does not take turns (:meth:`app.inference.batching.Batcher._taking_turns`).  On 2 cores,
INT8 and 16 clients, turns served 14% more images/s than batches and decodes side by side, with
the same latency at one client (``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

DECODE_WAIT_S = 1.0  # longest a decode waits for a batch to end


class Turns:
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s  # longest a batch waits for the decodes under way; 0: turns off
        self._changed = threading.Condition()
        self._computing = 0  # batches computing (inference threads)
        self._pending = 0  # images decoding, or decoded and not yet queued (on the event loop)
        self._no_decodes = asyncio.Event()
        self._no_decodes.set()

    @classmethod
    def off(cls) -> Turns:
        """Batches and decodes side by side (an engine on a GPU, or in another process)."""
        return cls(0.0)

    @property
    def on(self) -> bool:
        return self.wait_s > 0

    @property
    def pending(self) -> int:
        """Images whose decode is queued or running, or that are decoded but not yet queued
        for the model (their request is still waiting for its other images)."""
        return self._pending

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Around one batch's model call, in the inference thread."""
        with self._changed:
            self._computing += 1
        try:
            yield
        finally:
            with self._changed:
                self._computing -= 1
                self._changed.notify_all()

    def wait_for_batches(self) -> None:
        """In a decode thread, before decoding: wait until no batch computes (at most
        DECODE_WAIT_S)."""
        if not self.on:
            return
        with self._changed:
            self._changed.wait_for(lambda: self._computing == 0, timeout=DECODE_WAIT_S)

    def image_decoding(self) -> None:
        """On the event loop: an image was handed to the decode pool."""
        if self.on:
            self._pending += 1
            self._no_decodes.clear()

    def image_done(self) -> None:
        """On the event loop: an image counted by :meth:`image_decoding` is queued for the model
        (its request's images are all decoded) or dropped.  Counting until then, not until its
        decode ends, means a batch that saw the last one done finds every image in its queue."""
        if self.on:
            self._pending -= 1
            if self._pending == 0:
                self._no_decodes.set()

    async def no_decodes(self) -> None:
        """Wait until no image is decoding or decoded and not yet queued."""
        await self._no_decodes.wait()
