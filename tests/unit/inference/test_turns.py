"""Decodes and batches taking turns on the cores: the gate on its own, then with the batcher."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from app.inference import turns as turns_module
from app.inference.batching import Batcher, Scored, ShuttingDown
from app.inference.turns import Turns
from app.ml.devices import DeviceInfo
from app.ml.engines import computes_on_the_cpu


def _decode_beside_a_batch(turns: Turns, batch_s: float) -> float:
    """Start a batch that computes for ``batch_s``, then a decode: when the decode started,
    seconds after the batch did."""
    computing = threading.Event()

    def batch() -> None:
        with turns.computing():
            computing.set()
            time.sleep(batch_s)

    started = time.monotonic()
    thread = threading.Thread(target=batch)
    thread.start()
    computing.wait(5)
    turns.wait_for_batches()
    waited = time.monotonic() - started
    thread.join()
    return waited


def test_a_decode_waits_while_a_batch_computes() -> None:
    assert _decode_beside_a_batch(Turns(0.05), batch_s=0.3) >= 0.25


def test_with_turns_off_a_decode_runs_beside_the_batch() -> None:
    assert _decode_beside_a_batch(Turns.off(), batch_s=0.3) < 0.25


def test_a_batch_that_hangs_holds_a_decode_back_for_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(turns_module, "DECODE_WAIT_S", 0.1)
    assert 0.08 <= _decode_beside_a_batch(Turns(0.05), batch_s=1.5) < 1.0


def test_images_are_counted_until_each_one_is_done() -> None:
    async def scenario() -> None:
        turns = Turns(0.05)
        turns.image_decoding()
        turns.image_decoding()
        turns.image_done()
        assert turns.pending == 1
        waiting = asyncio.create_task(turns.no_decodes())
        await asyncio.sleep(0.02)
        assert not waiting.done()
        turns.image_done()
        await asyncio.wait_for(waiting, 1)
        assert turns.pending == 0

    asyncio.run(scenario())


def test_turns_off_counts_nothing() -> None:
    turns = Turns.off()
    turns.image_decoding()
    assert turns.pending == 0 and not turns.on


class _Model:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, images: np.ndarray) -> Scored[str]:
        self.batches.append(len(images))
        return Scored(images[:, 0, 0, :].astype(np.float32), "v1")


def _image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def _started(
    model: Callable[[np.ndarray], Scored[str]], turns: Turns, size: int = 8, streams: int = 1
) -> Batcher[str]:
    """A running batcher of batches up to ``size``, its engine running ``streams`` at once."""
    batcher = Batcher(
        model,
        max_batch_size=size,
        max_delay_s=0.001,
        queue_limit=64,
        parallel=lambda: streams,
        turns=turns,
    )
    batcher.start()
    return batcher


async def _decode_then_queue(batcher: Batcher[str], value: int, after_s: float) -> None:
    """A request whose image is decoding for ``after_s``, then waits for the model."""
    batcher.turns.image_decoding()
    await asyncio.sleep(after_s)
    batcher.turns.image_done()
    await batcher.predict([_image(value)], 5)


def _batches_with(turns: Turns, streams: int = 1) -> list[int]:
    """One image queued while two more are decoding (for 50 and 100 ms)."""
    model = _Model()

    async def scenario() -> None:
        batcher = _started(model, turns, streams=streams)
        decoding = [
            asyncio.create_task(_decode_then_queue(batcher, value, after_s))
            for value, after_s in ((2, 0.05), (3, 0.1))
        ]
        await asyncio.sleep(0)
        await batcher.predict([_image(1)], 5)
        await asyncio.gather(*decoding)
        await batcher.stop(1)

    asyncio.run(scenario())
    return model.batches


def test_a_batch_waits_for_the_decodes_under_way_and_takes_their_images() -> None:
    assert _batches_with(Turns(1.0)) == [3]


def test_with_turns_off_a_batch_does_not_wait_for_decodes() -> None:
    assert _batches_with(Turns.off()) == [1, 1, 1]


def test_with_streams_a_batch_does_not_wait_for_decodes() -> None:
    assert _batches_with(Turns(1.0), streams=2) == [1, 1, 1]


def test_with_streams_a_decode_does_not_wait_for_batches() -> None:
    turns = Turns(1.0)
    computing = threading.Event()
    release = threading.Event()

    def batch(images: np.ndarray) -> Scored[str]:
        computing.set()
        release.wait(5)
        return Scored(images[:, 0, 0, :].astype(np.float32), "v1")

    async def scenario() -> float:
        batcher = _started(batch, turns, streams=2)
        waiting = asyncio.create_task(batcher.predict([_image(1)], 5))
        await asyncio.to_thread(computing.wait, 5)
        started = time.monotonic()
        await asyncio.to_thread(turns.wait_for_batches)
        waited = time.monotonic() - started
        release.set()
        await waiting
        await batcher.stop(1)
        return waited

    assert asyncio.run(scenario()) < 0.5


def test_the_wait_for_decodes_is_bounded() -> None:
    model = _Model()

    async def scenario() -> float:
        turns = Turns(0.2)
        batcher = _started(model, turns)
        turns.image_decoding()  # an image whose decode never ends
        started = time.monotonic()
        await batcher.predict([_image(1)], 5)
        waited = time.monotonic() - started
        await batcher.stop(1)
        return waited

    assert 0.15 <= asyncio.run(scenario()) < 2.0
    assert model.batches == [1]


def test_a_full_batch_does_not_wait_for_decodes() -> None:
    model = _Model()

    async def scenario() -> None:
        turns = Turns(30.0)
        batcher = _started(model, turns, size=4)
        turns.image_decoding()  # would hold a batch that has room for 30 s
        await asyncio.wait_for(batcher.predict([_image(i) for i in range(4)], 5), 5)
        await batcher.stop(0.1)

    asyncio.run(scenario())
    assert model.batches == [4]


@pytest.mark.parametrize(
    ("engine", "device", "expected"),
    [("openvino", "CPU", True), ("openvino", "GPU", True), ("tensorflow", "CPU", True),
     ("tensorflow", "GPU", False), ("auto", "GPU", False), ("auto", "CPU", True)],
)  # fmt: skip
def test_turns_apply_where_the_batches_use_the_cpus_cores(
    engine: str, device: str, expected: bool
) -> None:
    info = DeviceInfo(kind=device, name=device, backend="tensorflow")
    assert computes_on_the_cpu(engine, info) is expected  # type: ignore[arg-type]


def test_stop_fails_the_images_of_a_batch_waiting_for_decodes() -> None:
    model = _Model()

    async def scenario() -> None:
        turns = Turns(30.0)
        batcher = _started(model, turns)
        turns.image_decoding()  # an image whose decode never ends holds the batch
        waiting = asyncio.ensure_future(batcher.predict([_image(1)], 10))
        await asyncio.sleep(0.05)  # the batch holds its image, waiting for the decode
        assert batcher.depth == 0
        await batcher.stop(drain_s=0)
        outcomes = await asyncio.gather(waiting, return_exceptions=True)
        assert isinstance(outcomes[0], ShuttingDown), outcomes  # at once, not at the timeout

    asyncio.run(scenario())
    assert model.batches == []
