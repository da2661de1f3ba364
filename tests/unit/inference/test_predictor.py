"""The predictor on its own, over a fake backend: admission before the body, decoding as images
arrive, the admission ended before the model is waited for, one version for every image."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from app import imaging
from app.inference.admission import Admission, UploadBudgetFull
from app.inference.batching import Overloaded, TimedOut
from app.inference.decoding import DecodeBudget, DecodeBusy, RequestTooCostly
from app.inference.manager import NoModel
from app.inference.predictor import DecodingImage, ImageRejected, Predictor
from app.inference.turns import Turns
from tests.support import imagefactory as make
from tests.support.fakes import FakeBackend, serving_model

MIB = 1024 * 1024


def _predictor(backend: FakeBackend, budget: int = 8 * MIB) -> Predictor:
    return Predictor(
        backend, Admission(budget), DecodeBudget(10**9, 10**9), imaging.DEFAULT_MAX_PIXELS, 5
    )


async def _body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def test_a_request_is_classified_in_upload_order_by_one_version() -> None:
    async def scenario() -> None:
        backend = FakeBackend(serving_model(3, ["cats", "dogs"]))
        predictor = _predictor(backend)
        photos = [make.solid((10, 10, 10)), make.solid((200, 200, 200))]
        with predictor.admit(1000) as admitted:
            images = [
                admitted.start_decoding(f"{i}.png", make.encode(photo, "PNG"))
                for i, photo in enumerate(photos)
            ]
            inference = await admitted.classify(images)
        assert inference.version == 3 and inference.classes == ["cats", "dogs"]
        assert inference.probabilities[:, 0].tolist() == pytest.approx([10.0, 200.0], abs=1)
        predictor.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("backend", "declared", "refused"),
    [
        (FakeBackend(None), 10, NoModel),
        (FakeBackend(serving_model(), room=0), 10, Overloaded),
        (FakeBackend(serving_model()), 9 * MIB, UploadBudgetFull),
    ],
    ids=["no model", "queue full", "budget full"],
)
def test_a_request_without_room_is_refused_before_it_is_admitted(
    backend: FakeBackend, declared: int, refused: type[Exception]
) -> None:
    predictor = _predictor(backend)
    with pytest.raises(refused), predictor.admit(declared):
        raise AssertionError("admitted")
    assert predictor.admission.in_flight == 0 and backend.on_the_way == 0


def test_the_admission_ends_before_the_images_wait_for_the_model() -> None:
    """The budget and the batcher's 'on the way' mark cover the body and its decoding only: a
    batch must not wait for a request whose images are already queued."""

    async def scenario() -> None:
        backend = FakeBackend(serving_model())
        predictor = _predictor(backend)
        with predictor.admit(None) as admitted:
            async for _ in admitted.meter(_body(b"x" * 1000, b"y" * 500)):
                pass
            assert predictor.admission.in_flight == 1500 and backend.on_the_way == 1
            image = admitted.start_decoding("a.jpg", make.jpeg())
            await admitted.classify([image])
            assert predictor.admission.in_flight == 0
        assert backend.calls == [(1, 0)]  # inferred with no request on the way
        predictor.close()

    asyncio.run(scenario())


def test_a_call_waiting_for_room_to_read_its_message_is_on_its_way() -> None:
    """gRPC reads one message at a time when each may be as large as the budget allows: a batch
    forming while calls wait their turn to read waits for their images (up to its delay), as
    it does for a body uploading, instead of running without them."""

    async def scenario() -> None:
        backend = FakeBackend(serving_model())
        predictor = _predictor(backend)
        with predictor.admit(held_bytes=6 * MIB):  # a call reading its message
            waiting = asyncio.ensure_future(predictor.wait_for_room(6 * MIB, 5))
            await asyncio.sleep(0.01)
            assert not waiting.done()
            assert backend.on_the_way == 2  # the call reading and the call waiting to read
        await asyncio.wait_for(waiting, 5)
        assert backend.on_the_way == 0  # the caller admits it at once (on its way again)
        predictor.close()

    asyncio.run(scenario())


def test_a_body_that_outgrows_the_budget_is_refused_as_it_arrives() -> None:
    async def scenario() -> None:
        predictor = _predictor(FakeBackend(serving_model()), budget=2 * MIB)

        async def request() -> None:
            with predictor.admit(None) as admitted:
                async for _ in admitted.meter(_body(b"x" * MIB, b"y" * MIB, b"z")):
                    pass

        with pytest.raises(UploadBudgetFull):
            await request()
        assert predictor.admission.in_flight == 0

    asyncio.run(scenario())


def test_a_bad_file_fails_the_request_by_its_name_and_frees_the_admission() -> None:
    async def scenario() -> None:
        backend = FakeBackend(serving_model())
        predictor = _predictor(backend)

        async def request() -> None:
            with predictor.admit(100) as admitted:
                good = admitted.start_decoding("good.jpg", make.jpeg())
                bad = admitted.start_decoding("notes.jpg", b"just text")
                await admitted.classify([good, bad])

        with pytest.raises(ImageRejected) as refused:
            await request()
        assert refused.value.filename == "notes.jpg"
        assert isinstance(refused.value.error, imaging.CorruptImage)
        assert backend.calls == [] and predictor.admission.in_flight == 0
        predictor.close()

    asyncio.run(scenario())


def test_images_decode_in_the_decode_pool_as_soon_as_each_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    preprocess = imaging.preprocess

    def spy(data: bytes, max_pixels: int) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return preprocess(data, max_pixels=max_pixels)

    monkeypatch.setattr(imaging, "preprocess", spy)

    async def scenario() -> None:
        predictor = _predictor(FakeBackend(serving_model()))
        with predictor.admit(None) as admitted:
            first = admitted.start_decoding("a.jpg", make.jpeg(size=(640, 480)))
            decoded = await first.decoding  # decoded before the request is complete
            assert decoded.shape == (imaging.IMAGE_SIZE, imaging.IMAGE_SIZE, 3)
            second = admitted.start_decoding("b.jpg", make.jpeg(seed=2))
            await admitted.classify([first, second])
        predictor.close()

    asyncio.run(scenario())
    assert len(threads) == 2 and all(name.startswith("decode") for name in threads)


def test_decodes_not_waited_for_are_dropped_when_the_request_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow(data: bytes, max_pixels: int) -> np.ndarray:
        time.sleep(0.2)
        return np.zeros((imaging.IMAGE_SIZE, imaging.IMAGE_SIZE, 3), np.uint8)

    monkeypatch.setattr(imaging, "preprocess", slow)

    async def scenario() -> None:
        predictor = _predictor(FakeBackend(serving_model()))
        images = 3 * max(2, os.cpu_count() or 2)  # three times what the decode pool runs
        photo = make.jpeg()
        started: list[DecodingImage] = []

        async def request() -> None:
            with predictor.admit(None) as admitted:
                started.extend(admitted.start_decoding(f"{i}.jpg", photo) for i in range(images))
                await asyncio.sleep(0.05)
                raise RuntimeError("the body was cut short")

        with pytest.raises(RuntimeError):
            await request()
        await asyncio.sleep(0)
        cancelled = sum(image.decoding.cancelled() for image in started)
        assert cancelled >= images // 2
        predictor.close()

    asyncio.run(scenario())


def test_decoding_work_is_counted_against_the_budget_until_done() -> None:
    async def scenario() -> None:
        backend = FakeBackend(serving_model())
        predictor = Predictor(
            backend, Admission(10**9), DecodeBudget(50_000_000, 45_000_000), 10**9, timeout_s=30
        )
        bomb = make.flat_png(6300, 6300, padding=160_000)  # 39.7 million pixels
        with predictor.admit(None) as first:
            image = first.start_decoding("a.png", bomb)
            assert predictor.decoding.owed == 6300 * 6300
            with predictor.admit(None) as second, pytest.raises(DecodeBusy):
                second.start_decoding("b.png", bomb)  # does not fit beside the first
            with pytest.raises(RequestTooCostly):
                first.start_decoding("c.png", bomb)  # two of them are over one request's share
            await first.classify([image])
        await asyncio.sleep(0.05)
        assert predictor.decoding.owed == 0
        predictor.close()

    asyncio.run(scenario())


def test_the_deadline_covers_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(data: bytes, max_pixels: int) -> np.ndarray:
        time.sleep(1.0)
        return np.zeros((imaging.IMAGE_SIZE, imaging.IMAGE_SIZE, 3), np.uint8)

    monkeypatch.setattr(imaging, "preprocess", slow)

    async def scenario() -> None:
        predictor = Predictor(
            FakeBackend(serving_model()), Admission(10**9), DecodeBudget(10**9, 10**9), 10**9, 0.3
        )
        with predictor.admit(None) as admitted:
            image = admitted.start_decoding("a.jpg", make.jpeg())
            with pytest.raises(TimedOut, match=r"0\.3s request timeout"):
                await admitted.classify([image])
        predictor.close()

    asyncio.run(scenario())


def test_with_turns_a_decode_waits_for_the_batch_computing_and_is_counted_until_queued() -> None:
    async def scenario() -> None:
        backend = FakeBackend(serving_model())
        backend.turns = Turns(0.05)
        predictor = _predictor(backend)
        release = threading.Event()
        computing = threading.Event()

        def batch() -> None:
            with backend.turns.computing():
                computing.set()
                release.wait(5)

        thread = threading.Thread(target=batch)
        thread.start()
        computing.wait(5)
        with predictor.admit(None) as admitted:
            good = admitted.start_decoding("a.jpg", make.jpeg())
            assert backend.turns.pending == 1
            await asyncio.sleep(0.2)
            assert not good.decoding.done()  # its turn comes when the batch ends
            release.set()
            await good.decoding
            assert backend.turns.pending == 1  # decoded, not yet queued for the model
            await admitted.classify([good])
            assert backend.turns.pending == 0

        async def bad_request() -> None:
            with predictor.admit(None) as admitted:
                bad = admitted.start_decoding("b.jpg", make.jpeg()[:200])
                await admitted.classify([bad])

        with pytest.raises(ImageRejected):
            await bad_request()
        thread.join()
        await asyncio.sleep(0.05)
        assert backend.turns.pending == 0
        predictor.close()

    asyncio.run(scenario())
