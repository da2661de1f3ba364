"""What /model and /health/ready add on a cluster: every replica, and the versions served."""

from __future__ import annotations

from app.http.schemas import Health, cluster_fields
from app.inference.control import ReplicaStatus
from app.inference.manager import ServingModel
from app.store.metadata import VersionMetadata


def _model(number: int) -> ServingModel:
    metadata = VersionMetadata(version=number, classes=["a", "b"])
    loaded_at = "2026-01-01T00:00:00+00:00"
    return ServingModel(
        number, ["a", "b"], metadata, loaded_at, "openvino", "int8", "f32", "CPU", (1,)
    )


def _replica(name: str, model: ServingModel | None, deployment: str = "Model") -> ReplicaStatus:
    return ReplicaStatus(deployment, name, "127.0.0.2", 1, model)


def test_one_process_adds_nothing() -> None:
    assert cluster_fields(None) == {}
    assert Health(status="ok", **cluster_fields(None)).model_dump(exclude_unset=True) == {
        "status": "ok"
    }


def test_replicas_that_differ_are_named_at_the_top_level_each_version_once() -> None:
    replicas = [
        _replica("ingress", None, deployment="Ingress"),
        _replica("m1", _model(10)),
        _replica("m2", _model(2)),
        _replica("m3", _model(10)),
        _replica("loading", None),  # a Model replica with nothing loaded yet
    ]
    fields = cluster_fields(replicas)
    assert fields["versions_served"] == ["2", "10"]  # by number, not as text
    assert [r.version for r in fields["replicas"]] == [None, "10", "2", "10", None]
    body = Health(status="ok", model_version="10", **fields).model_dump(exclude_unset=True)
    assert body["versions_served"] == ["2", "10"] and len(body["replicas"]) == 5


def test_replicas_that_agree_list_one_version() -> None:
    fields = cluster_fields([_replica("m1", _model(3)), _replica("m2", _model(3))])
    assert fields["versions_served"] == ["3"]


def test_a_cluster_with_no_model_loaded_serves_no_version() -> None:
    assert (
        cluster_fields([_replica("ingress", None, deployment="Ingress")])["versions_served"] == []
    )
