"""Concurrency through the real app: batching, isolation of answers, overload and failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app import imaging
from app.ml import network
from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import engine_of, make_settings, running


def _wrap_engine(
    client: TestClient,
    wrapper: Callable[[Callable[[np.ndarray], np.ndarray], np.ndarray], np.ndarray],
) -> list[int]:
    """Route the serving engine's predict through ``wrapper``; return the list of batch sizes."""
    engine = engine_of(client)
    original = engine.predict
    calls: list[int] = []

    def predict(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return wrapper(original, images)

    engine.predict = predict
    return calls


def _post(client: TestClient, data: bytes, name: str = "x.jpg") -> Any:
    return client.post("/predict", files={"file": (name, data, "image/jpeg")})


def _concurrently(count: int, task: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(task, range(count)))


def test_concurrent_requests_take_fewer_model_calls_and_get_their_own_answers(
    store: ModelStore,
) -> None:
    settings = make_settings(store.root, max_batch_delay_ms=150, max_batch_size=16)
    images = [make.jpeg(seed=100 + i) for i in range(12)]
    model = network.load(store.get(1).model_path)
    expected = [
        np.asarray(model(imaging.preprocess(d)[None].astype(np.float32)))[0] for d in images
    ]
    with running(settings) as client:
        calls = _wrap_engine(client, lambda run, batch: run(batch))
        responses = _concurrently(12, lambda i: _post(client, images[i], f"{i}.jpg"))
    assert [r.status_code for r in responses] == [200] * 12
    assert len(calls) < 12, calls
    for i, response in enumerate(responses):
        prediction = response.json()["predictions"][0]
        assert prediction["filename"] == f"{i}.jpg"
        served = np.array(list(prediction["probabilities"].values()))
        assert np.allclose(served, expected[i], atol=1e-5)
        others = [j for j in range(12) if not np.allclose(expected[j], expected[i], atol=1e-4)]
        assert all(not np.allclose(served, expected[j], atol=1e-4) for j in others)


def test_a_batch_failure_reaches_every_waiter_then_service_resumes(store: ModelStore) -> None:
    settings = make_settings(store.root, max_batch_delay_ms=150)
    failing = {"on": True}

    def maybe_fail(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
        if failing["on"]:
            raise RuntimeError("GPU on fire")
        return run(batch)

    with running(settings) as client:
        calls = _wrap_engine(client, maybe_fail)
        responses = _concurrently(6, lambda i: _post(client, make.jpeg(seed=i)))
        failing["on"] = False
        after = _post(client, make.jpeg())
    assert len(calls) < 7
    assert [r.status_code for r in responses] == [500] * 6
    assert all(
        "inference failed: RuntimeError: GPU on fire" in r.json()["detail"] for r in responses
    )
    assert after.status_code == 200


def test_overload_answers_503_with_retry_after_and_accepted_requests_succeed(
    store: ModelStore,
) -> None:
    settings = make_settings(store.root, max_batch_size=1, max_batch_delay_ms=0, queue_limit=2)

    def slow(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
        time.sleep(0.25)
        return run(batch)

    with running(settings) as client:
        _wrap_engine(client, slow)
        responses = _concurrently(10, lambda i: _post(client, make.jpeg(seed=i)))
        metrics = client.get("/metrics").text
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 3
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert "at capacity" in response.json()["detail"]
    assert 'flowers_requests_rejected_total{reason="overloaded"}' in metrics


def test_a_request_waiting_past_the_timeout_gets_504(store: ModelStore) -> None:
    settings = make_settings(
        store.root, request_timeout_s=0.2, max_batch_size=1, max_batch_delay_ms=0
    )

    def very_slow(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
        time.sleep(0.6)
        return run(batch)

    with running(settings) as client:
        _wrap_engine(client, very_slow)
        response = _post(client, make.jpeg())
        assert response.status_code == 504
        assert "timeout" in response.json()["detail"]
