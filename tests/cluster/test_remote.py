"""The Ingress's backend against fake Model and Coordinator handles: retries, errors, admission.

The real thing (a killed replica under load) is in test_cluster.py; these pin the rules fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from app.cluster.registry import ClusterView
from app.cluster.replica import Identity
from app.config import Settings
from app.inference.backend import Inference
from app.inference.batching import Overloaded, TimedOut
from app.inference.manager import NOT_READY, NoModel

ray_exceptions = pytest.importorskip("ray.exceptions", reason="needs Ray: pip install '.[ray]'")

from app.cluster.remote import RemoteBackend, ReplicaLost  # noqa: E402 (imports ray)

IMAGE = np.zeros((180, 180, 3), np.uint8)
ANSWER = Inference(version=4, classes=["a", "b"], probabilities=np.array([[0.2, 0.8]], "f4"))


class Method:
    """``handle.method.remote(...)``: each call answers with the next of ``outcomes``."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        return _answer(outcome)


async def _answer(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    if callable(outcome):
        return await outcome()
    return outcome


class Handle:
    def __init__(self, **methods: Method) -> None:
        self.__dict__.update(methods)


def _backend(infer: Method, queue_limit: int = 256) -> RemoteBackend:
    coordinator = Handle(view=Method(*[ClusterView(active=None)] * 10), report=Method(None))
    settings = Settings(queue_limit=queue_limit)
    me = Identity("Ingress", "r1", "127.0.0.2", 1)
    return RemoteBackend(Handle(infer=infer), coordinator, settings, me)  # type: ignore[arg-type]


def _run(backend: RemoteBackend, call: Callable[[], Any]) -> Any:
    async def scenario() -> Any:
        backend._accepting = True  # what start() does, without its background tasks
        return await call()

    return asyncio.run(scenario())


def test_a_request_whose_replica_died_is_sent_once_more() -> None:
    infer = Method(ray_exceptions.ActorDiedError(), ANSWER)
    backend = _backend(infer)
    assert _run(backend, lambda: backend.infer([IMAGE], 5)) is ANSWER
    assert infer.calls == 2 and backend.retried == 1 and backend.requests == 1


def test_a_second_death_answers_503_not_a_third_try() -> None:
    died = ray_exceptions.ActorDiedError
    infer = Method(died(), died(), ANSWER)
    backend = _backend(infer)
    with pytest.raises(ReplicaLost) as raised:
        _run(backend, lambda: backend.infer([IMAGE], 5))
    assert isinstance(raised.value, NoModel) and infer.calls == 2  # NoModel: 503 + Retry-After


def test_the_model_replicas_errors_arrive_as_themselves() -> None:
    wrapped = ray_exceptions.RayTaskError("infer", "traceback", Overloaded("the queue is full"))
    backend = _backend(Method(wrapped))
    with pytest.raises(Overloaded, match="the queue is full"):
        _run(backend, lambda: backend.infer([IMAGE], 5))


def test_a_replica_that_does_not_answer_in_time_is_a_504() -> None:
    async def never() -> None:
        await asyncio.sleep(60)

    backend = _backend(Method(never))
    with pytest.raises(TimedOut):
        _run(backend, lambda: backend.infer([IMAGE], 0.01))


def test_images_beyond_the_queue_limit_are_refused_before_they_are_sent() -> None:
    infer = Method(ANSWER)
    backend = _backend(infer, queue_limit=2)
    with pytest.raises(Overloaded):
        _run(backend, lambda: backend.infer([IMAGE] * 3, 5))
    assert infer.calls == 0


def test_without_a_model_replica_serving_the_cluster_is_not_ready() -> None:
    backend = _backend(Method())
    assert backend.serving() is None
    with pytest.raises(NoModel) as refused:
        backend.ready_model()
    # Anonymous clients are told only that no model is loaded; why is in the replicas' log.
    assert str(refused.value) == NOT_READY
