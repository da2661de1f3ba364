"""The cluster's view of its replicas: reports, staleness, goodbyes, which version it serves."""

from __future__ import annotations

import dataclasses

from app.cluster.registry import (
    GOODBYE_KEPT_S,
    INGRESS,
    MODEL,
    STALE_AFTER_S,
    ClusterView,
    ReplicaRegistry,
)
from app.inference.backend import ReplicaStatus, ServingModel
from app.store.metadata import VersionMetadata


def _model(number: int, loaded_at: str = "2026-01-01T00:00:00+00:00") -> ServingModel:
    metadata = VersionMetadata(version=number, classes=["a", "b"])
    return ServingModel(
        number, ["a", "b"], metadata, loaded_at, "tensorflow", "f32", "f32", "CPU", (1,)
    )


def _replica(name: str, model: ServingModel | None, deployment: str = MODEL) -> ReplicaStatus:
    return ReplicaStatus(deployment, name, "127.0.0.2", 1, model)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_replica_that_stops_reporting_drops_out() -> None:
    clock = Clock()
    registry = ReplicaRegistry(clock)
    registry.report(_replica("quiet", _model(1)))
    clock.now += STALE_AFTER_S / 2
    registry.report(_replica("talking", _model(1)))
    clock.now += STALE_AFTER_S / 2 + 0.1
    assert [r.replica for r in registry.current()] == ["talking"]


def test_a_replica_that_says_goodbye_drops_out_at_once() -> None:
    registry = ReplicaRegistry(Clock())
    registry.report(_replica("leaving", _model(1)))
    registry.forget("leaving")
    assert registry.current() == []


def test_the_latest_report_of_a_replica_replaces_the_earlier_one() -> None:
    registry = ReplicaRegistry(Clock())
    registry.report(_replica("m", _model(1)))
    registry.report(_replica("m", _model(2)))
    assert [r.model.number for r in registry.current() if r.model] == [2]


def test_the_cluster_serves_the_active_version_while_a_swap_is_half_done() -> None:
    replicas = [_replica("old", _model(1, "2026-01-02")), _replica("new", _model(2, "2026-01-01"))]
    view = ClusterView(active=2, replicas=replicas)
    served = view.serving()
    assert served is not None and served.number == 2
    assert not view.served_everywhere(2)


def test_without_the_active_version_loaded_the_newest_loaded_one_is_shown() -> None:
    replicas = [_replica("a", _model(1, "2026-01-01")), _replica("b", _model(2, "2026-01-02"))]
    served = ClusterView(active=5, replicas=replicas).serving()
    assert served is not None and served.number == 2


def test_ingress_replicas_neither_serve_a_model_nor_count_for_served_everywhere() -> None:
    replicas = [_replica("http", None, INGRESS), _replica("m", _model(3))]
    view = ClusterView(active=3, replicas=replicas)
    assert view.served_everywhere(3) and [r.replica for r in view.models] == ["m"]
    only_http = ClusterView(active=3, replicas=[_replica("http", None, INGRESS)])
    assert not only_http.served_everywhere(3)
    assert ClusterView(active=None).serving() is None


def test_a_report_that_arrives_after_a_newer_one_is_dropped() -> None:
    """Each report is its own remote call: the one sent before a swap can land after the one
    sent after it, and must not bring the old version back."""
    registry = ReplicaRegistry(Clock())
    newer = dataclasses.replace(_replica("m", _model(2)), sequence=8)
    registry.report(newer)
    registry.report(dataclasses.replace(_replica("m", _model(1)), sequence=7))
    assert [r.model.number for r in registry.current() if r.model] == [2]
    registry.report(dataclasses.replace(_replica("m", _model(3)), sequence=9))
    assert [r.model.number for r in registry.current() if r.model] == [3]


def test_a_report_in_flight_after_a_goodbye_does_not_bring_the_replica_back() -> None:
    clock = Clock()
    registry = ReplicaRegistry(clock)
    registry.report(dataclasses.replace(_replica("leaving", _model(1)), sequence=1))
    registry.forget("leaving")
    registry.report(dataclasses.replace(_replica("leaving", _model(1)), sequence=2))
    assert registry.current() == []
    clock.now += GOODBYE_KEPT_S + 1  # long after: the id is forgotten (Serve never reuses one)
    registry.report(dataclasses.replace(_replica("other", _model(1)), sequence=1))
    assert [r.replica for r in registry.current()] == ["other"]
