"""The dynamic batcher on its own, with a fake model function."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from app.inference.batching import (
    Batcher,
    BatchFailed,
    Overloaded,
    Scored,
    ShuttingDown,
    TimedOut,
)


class FakeModel:
    """Returns each image's first pixel as its 'probabilities'; records batch sizes."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.delay_s = delay_s
        self.fail = fail
        self.threads: set[str] = set()

    def __call__(self, images: np.ndarray) -> Scored[str]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(images))
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("boom")
        return Scored(images[:, 0, 0, :].astype(np.float32), "v1")


def _image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


async def _with_batcher(model: FakeModel, **options: float) -> Batcher[str]:
    defaults = {"max_batch_size": 8, "max_delay_s": 0.05, "queue_limit": 100}
    batcher = Batcher(model, **(defaults | options))  # type: ignore[arg-type]
    batcher.start()
    return batcher


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    async def scenario() -> None:
        model = FakeModel()
        batcher = await _with_batcher(model)
        results = await asyncio.gather(*(batcher.predict([_image(i)], 5) for i in range(20)))
        await batcher.stop(1)
        assert [r[0].probabilities[0] for r in results] == list(range(20))
        assert len(model.batches) < 20
        assert max(model.batches) <= 8
        assert sum(model.batches) == 20

    asyncio.run(scenario())


def test_a_request_with_many_images_keeps_their_order() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(), max_batch_size=3)
        results = await batcher.predict([_image(i) for i in range(7)], 5)
        await batcher.stop(1)
        assert [r.probabilities[0] for r in results] == list(range(7))
        assert {r.tag for r in results} == {"v1"}

    asyncio.run(scenario())


def test_a_lone_image_runs_at_once_when_nothing_else_is_on_its_way() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(), max_delay_s=5)
        started = time.monotonic()
        await batcher.predict([_image(1)], 10)
        waited = time.monotonic() - started
        await batcher.stop(1)
        assert waited < 1.0

    asyncio.run(scenario())


def test_a_batch_waits_up_to_the_delay_for_requests_still_arriving() -> None:
    async def scenario() -> None:
        model = FakeModel()
        batcher = await _with_batcher(model, max_delay_s=0.3)

        async def late_request() -> None:
            with batcher.images_on_the_way():  # still uploading/decoding
                await asyncio.sleep(0.1)
            await batcher.predict([_image(2)], 5)

        started = time.monotonic()
        late = asyncio.create_task(late_request())
        await asyncio.sleep(0.01)
        first = await batcher.predict([_image(1)], 5)
        waited = time.monotonic() - started
        await late
        await batcher.stop(1)
        assert first[0].probabilities[0] == 1
        assert model.batches == [2]  # the late image joined the waiting one
        assert 0.08 <= waited < 2.0

    asyncio.run(scenario())


def test_the_delay_bounds_the_wait_for_arriving_requests() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(), max_delay_s=0.2)
        with batcher.images_on_the_way():  # e.g. a slow upload that will not finish soon
            started = time.monotonic()
            await batcher.predict([_image(1)], 5)
            waited = time.monotonic() - started
        await batcher.stop(1)
        assert 0.15 <= waited < 2.0

    asyncio.run(scenario())


def test_a_full_batch_runs_without_waiting_for_the_delay() -> None:
    async def scenario() -> None:
        model = FakeModel()
        batcher = await _with_batcher(model, max_batch_size=4, max_delay_s=30)
        results = await batcher.predict([_image(i) for i in range(4)], 5)
        await batcher.stop(1)
        assert len(results) == 4 and model.batches == [4]

    asyncio.run(scenario())


def test_the_model_runs_in_the_inference_thread_not_the_event_loop() -> None:
    async def scenario() -> None:
        model = FakeModel()
        batcher = await _with_batcher(model)
        await batcher.predict([_image(1)], 5)
        await batcher.stop(1)
        assert len(model.threads) == 1
        assert next(iter(model.threads)).startswith("inference")

    asyncio.run(scenario())


class Overlaps(FakeModel):
    """A FakeModel that records how many of its calls ran at once."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s)
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, images: np.ndarray) -> Scored[str]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return super().__call__(images)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_as_many_batches_run_at_once_as_the_engine_has_streams(parallel: int) -> None:
    async def scenario() -> None:
        model = Overlaps(delay_s=0.05)
        batcher = await _with_batcher(model, max_batch_size=2, max_delay_s=0)
        batcher._parallel = lambda: parallel  # as ModelManager.parallel_batches answers
        results = await asyncio.gather(*(batcher.predict([_image(i)], 5) for i in range(24)))
        await batcher.stop(1)
        assert [r[0].probabilities[0] for r in results] == list(range(24))
        assert model.most == parallel
        assert len(model.threads) >= parallel

    asyncio.run(scenario())


def test_stop_fails_every_batch_still_computing() -> None:
    async def scenario() -> None:
        model = Overlaps(delay_s=0.5)
        batcher = await _with_batcher(model, max_batch_size=1, max_delay_s=0)
        batcher._parallel = lambda: 2
        waiting = [asyncio.ensure_future(batcher.predict([_image(i)], 5)) for i in range(4)]
        await asyncio.sleep(0.1)  # two batches computing, two images queued
        await batcher.stop(0)
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes), outcomes

    asyncio.run(scenario())


def test_a_failed_batch_reaches_every_waiter_and_the_batcher_goes_on() -> None:
    async def scenario() -> None:
        model = FakeModel(fail=True)
        batcher = await _with_batcher(model, max_delay_s=0.1)
        outcomes = await asyncio.gather(
            *(batcher.predict([_image(i)], 5) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, BatchFailed) and "boom" in str(o) for o in outcomes)
        model.fail = False
        assert (await batcher.predict([_image(3)], 5))[0].probabilities[0] == 3
        await batcher.stop(1)

    asyncio.run(scenario())


def test_overload_is_refused_at_once_and_accepted_requests_finish() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(delay_s=0.2), max_batch_size=1, queue_limit=3)
        accepted = [asyncio.create_task(batcher.predict([_image(i)], 5)) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="limit 3"):
            await batcher.predict([_image(9), _image(9)], 5)
        results = await asyncio.gather(*accepted)
        await batcher.stop(1)
        assert [r[0].probabilities[0] for r in results] == [0, 1, 2]

    asyncio.run(scenario())


def test_a_request_that_waits_too_long_times_out_and_is_skipped() -> None:
    async def scenario() -> None:
        model = FakeModel(delay_s=0.3)
        batcher = await _with_batcher(model, max_batch_size=1, max_delay_s=0)
        slow = asyncio.create_task(batcher.predict([_image(1)], 5))
        await asyncio.sleep(0.01)
        with pytest.raises(TimedOut, match="timeout"):
            await batcher.predict([_image(2)], 0.05)
        await slow
        await asyncio.sleep(0.4)
        await batcher.stop(1)
        assert model.batches == [1]  # the timed-out image never reached the model

    asyncio.run(scenario())


def test_stop_drains_queued_items() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(delay_s=0.05), max_batch_size=1, max_delay_s=0)
        pending = [asyncio.create_task(batcher.predict([_image(i)], 5)) for i in range(4)]
        await asyncio.sleep(0)
        await batcher.stop(drain_s=5)
        results = await asyncio.gather(*pending)
        assert [r[0].probabilities[0] for r in results] == [0, 1, 2, 3]

    asyncio.run(scenario())


def test_stop_fails_what_cannot_drain_in_time_and_refuses_new_work() -> None:
    async def scenario() -> None:
        batcher = await _with_batcher(FakeModel(delay_s=0.3), max_batch_size=1, max_delay_s=0)
        pending = [asyncio.create_task(batcher.predict([_image(i)], 5)) for i in range(3)]
        await asyncio.sleep(0.05)
        await batcher.stop(drain_s=0)
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(o, ShuttingDown) for o in outcomes)
        with pytest.raises(ShuttingDown):
            await batcher.predict([_image(1)], 1)

    asyncio.run(scenario())


def test_stop_fails_the_images_of_a_batch_still_gathering() -> None:
    async def scenario() -> None:
        model = FakeModel()
        batcher = await _with_batcher(model, max_delay_s=30)
        with batcher.images_on_the_way():  # another request uploading: the batch waits for it
            waiting = asyncio.ensure_future(batcher.predict([_image(1), _image(2)], 10))
            await asyncio.sleep(0.05)  # the batch being gathered holds both images
            assert batcher.depth == 0
            await batcher.stop(drain_s=0)
            outcomes = await asyncio.gather(waiting, return_exceptions=True)
        # a 503 at once (not a 504 when the request's timeout ends)
        assert isinstance(outcomes[0], ShuttingDown), outcomes
        assert model.batches == []

    asyncio.run(scenario())
