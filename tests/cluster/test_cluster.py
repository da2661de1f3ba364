"""The service on a real 2-node Ray Serve cluster: placement, batching, hot swaps, retraining,
a killed Model replica and autoscaling, under real HTTP load through both nodes' proxies.

The tests share one cluster and run in file order (the last one redeploys with autoscaling).
Each prints what it measured (run with ``-s`` to see it).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from typing import Any

import httpx2 as httpx
import psutil
import pytest

from tests.cluster.conftest import (
    AUTH,
    NODES,
    Deployed,
    Load,
    LoadResult,
    Readiness,
    counts_by_node,
)

pytest.importorskip("ray", reason="the cluster tests need Ray Serve: pip install -e '.[ray]'")

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def load_at_16(deployed: Deployed) -> tuple[LoadResult, list[dict[str, Any]]]:
    """16 clients for 10 s; then every replica's counts (each reports once a second)."""
    before = {r["replica"]: r for r in deployed.replicas()}
    with Load(deployed, clients=16) as load:
        time.sleep(10)
    time.sleep(2.5)
    after = deployed.replicas()
    for replica in after:
        earlier = before.get(replica["replica"], {})
        for key in ("requests", "images", "batches"):
            replica[key] -= earlier.get(key, 0)
    return load.result, after


def test_requests_are_served_by_ingress_and_model_replicas_on_both_nodes(
    load_at_16: tuple[LoadResult, list[dict[str, Any]]],
) -> None:
    result, replicas = load_at_16
    ingress = counts_by_node([r for r in replicas if r["deployment"] == "Ingress"], "requests")
    models = counts_by_node([r for r in replicas if r["deployment"] == "Model"], "images")
    print(f"\n{result.requests} requests at concurrency 16: {dict(result.statuses)}")
    print(f"  requests answered per node by Ingress replicas: {ingress}")
    print(f"  images classified per node by Model replicas:   {models}")
    assert result.failures == [] and result.requests > 0
    assert set(ingress) == set(NODES) and all(count > 0 for count in ingress.values())
    assert set(models) == set(NODES) and all(count > 0 for count in models.values())


def test_each_model_replica_names_the_arithmetic_it_serves_in(deployed: Deployed) -> None:
    """Replicas on CPUs of different kinds may serve in different arithmetics: /model lists
    each Model replica's (here one kind of CPU, so each is the top level's); Ingress has none."""
    info = deployed.get("/model").json()
    for replica in info["replicas"]:
        arithmetic = (replica["precision"], replica["float_precision"])
        print(f"\n  {replica['deployment']} on {replica['node']}: {arithmetic}")
        if replica["deployment"] == "Model":
            assert arithmetic == (info["precision"], info["float_precision"])
            assert info["precision"] in ("f32", "bf16", "int8")
        else:
            assert arithmetic == (None, None)


def test_no_ingress_replica_binds_the_grpc_port_its_environment_names(deployed: Deployed) -> None:
    """gRPC is started by ``python -m app.serve`` beside its app, never by the app: the two
    Ingress replicas, whose environment sets FLOWERS_GRPC_PORT, serve HTTP only."""
    ingress = deployed.replicas("Ingress")
    assert len(ingress) == 2 and {r["node"] for r in ingress} == set(NODES)
    for replica in ingress:
        process = psutil.Process(replica["pid"])
        assert process.environ().get("FLOWERS_GRPC_PORT") == str(deployed.grpc_port)
        listening = {c.laddr.port for c in process.net_connections("inet") if c.status == "LISTEN"}
        where = f"Ingress pid {replica['pid']} on {replica['node']}"
        print(
            f"\n  {where}: FLOWERS_GRPC_PORT={deployed.grpc_port}, listens on {sorted(listening)}"
        )
        assert deployed.grpc_port not in listening
    for host in ("127.0.0.1", *NODES):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, deployed.grpc_port), timeout=5).close()


def test_batches_form_in_the_model_replicas_at_concurrency_16(
    load_at_16: tuple[LoadResult, list[dict[str, Any]]],
) -> None:
    _, replicas = load_at_16
    models = [r for r in replicas if r["deployment"] == "Model"]
    images, batches = sum(r["images"] for r in models), sum(r["batches"] for r in models)
    for replica in models:
        node, count = replica["node"], replica["images"]
        mean = count / max(replica["batches"], 1)
        print(f"\n  Model replica on {node}: {count} images, mean batch {mean:.2f}")
    print(f"  mean batch size over both: {images / batches:.2f}")
    assert images / batches > 1


def test_hot_swaps_under_load_fail_no_request(deployed: Deployed) -> None:
    swaps = [2, 1, 2, 1, 2, 1]  # ends on version 1, where the retrain test starts
    seconds: list[float] = []
    with Load(deployed, clients=16) as load, Readiness(deployed) as readiness:
        for version in swaps:
            time.sleep(1.5)
            started = time.monotonic()
            response = deployed.post(f"/admin/models/{version}/activate", headers=AUTH)
            seconds.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
            deployed.wait_for(lambda v=version: _all_serve(deployed, v), 10, f"all on {version}")
            deployed.wait_for(lambda v=version: _served_alone(deployed, v), 5, f"{version} alone")
        time.sleep(1.5)
    result = load.result
    print(f"\n{len(swaps)} swaps under 16 clients: {result.requests} requests, {result.statuses}")
    took = ", ".join(f"{s:.1f}" for s in seconds)
    print(f"  answers by version: {dict(result.versions)}; each swap took {took} s")
    served = Counter(str(view["versions_served"]) for view in readiness.views)
    print(f"  /health/ready's versions_served, polled through the swaps: {dict(served)}")
    mixed = next((view for view in readiness.views if len(view["versions_served"]) > 1), None)
    if mixed is not None:
        by_node = [
            (r["node"], r["version"]) for r in mixed["replicas"] if r["deployment"] == "Model"
        ]
        top = {key: mixed[key] for key in ("status", "model_version", "versions_served")}
        print(f"  the first answer with two: {top}, Model replicas {by_node}")
    assert result.failures == []
    assert set(result.versions) == {"1", "2"}
    assert deployed.store.active_number() == 1
    # the top level names every version a Model replica serves, in each answer, and only those
    for view in readiness.views:
        models = {r["version"] for r in view["replicas"] if r["deployment"] == "Model"}
        assert view["versions_served"] == sorted(models, key=int), view
        assert view["model_version"] in view["versions_served"], view


def test_a_retrain_task_cancelled_from_another_node_publishes_nothing(deployed: Deployed) -> None:
    long_run = {"epochs": 200, "fine_tune_epochs": 50}  # minutes: it cannot end on its own first
    accepted = deployed.post("/admin/retrain", json=long_run, headers=AUTH)
    job_id = accepted.json()["job_id"]
    deployed.wait_for(lambda: _job(deployed, job_id)["log_tail"], 120, "the trainer's output")
    cancelled = httpx.delete(f"{deployed.base(1)}/admin/jobs/{job_id}", headers=AUTH, timeout=60)
    print(f"\ncancelled job {job_id}: {cancelled.json()['state']}, {cancelled.json()['error']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert [v.number for v in deployed.store.versions()] == [1, 2]


def _job(deployed: Deployed, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = deployed.get(f"/admin/jobs/{job_id}", node=1, headers=AUTH).json()
    return job


def test_a_retrain_on_the_cluster_publishes_a_version_every_replica_serves(
    deployed: Deployed,
) -> None:
    accepted = deployed.post("/admin/retrain", json={"folds": 3, "seed": 1}, headers=AUTH)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    second = deployed.post("/admin/retrain", node=1, json={}, headers=AUTH)  # the other proxy
    job = _wait_for_job(deployed, job_id)
    deployed.wait_for(lambda: _all_serve(deployed, 3), 10, "every replica on version 3")
    replicas = deployed.replicas("Model")
    print(f"\nretrain job {job_id}: {job['state']}, {job['result']}")
    print(f"  Model replicas now serve: {[(r['node'], r['version']) for r in replicas]}")
    assert second.status_code == 409 and job_id in second.json()["detail"]
    assert job["state"] == "succeeded", job
    version = job["result"]["version"]
    assert version == 3 and job["result"]["activated"] is True
    assert job["result"]["serving_error"] is None
    # the summary, at the log's end: 3 folds measured, and the default's fine-tuning ran
    assert any("accuracy             3-fold cross-validation" in line for line in job["log_tail"])
    assert any("fine-tuned           conv5, 4 epochs" in line for line in job["log_tail"])
    assert deployed.store.active_number() == 3
    assert {r["version"] for r in replicas} == {"3"} and len(replicas) == 2
    deployed.wait_for(lambda: _served_alone(deployed, 3), 5, "/model: version 3 alone")


def _all_serve(deployed: Deployed, version: int) -> bool:
    return {r["version"] for r in deployed.replicas("Model")} == {str(version)}


def _served_alone(deployed: Deployed, version: int) -> bool:
    """/model's versions_served is ``[version]``. Poll it: each Ingress replica refreshes its
    view of the cluster every 0.5 s, and the proxy may route this request to another Ingress
    replica than the last one, so /model can lag /health/ready by up to half a second."""
    served: list[str] = deployed.get("/model").json()["versions_served"]
    return served == [str(version)]


def _wait_for_job(deployed: Deployed, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = _job(deployed, job_id)
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(1)


def test_a_model_replica_killed_under_load_costs_no_client_a_failure(deployed: Deployed) -> None:
    victim = deployed.replicas("Model")[0]
    retried_before = sum(r["retried"] for r in deployed.replicas("Ingress"))
    ours = {p.pid for p in deployed.cluster.processes()}
    assert victim["pid"] in ours  # never signal a process this test did not start
    with Load(deployed, clients=16) as load:
        time.sleep(3)
        os.kill(victim["pid"], signal.SIGKILL)
        recovered_s = deployed.wait_for(
            lambda: _replaced(deployed, victim["pid"]), what="Serve to replace the replica"
        )
        time.sleep(2)
    retried = sum(r["retried"] for r in deployed.replicas("Ingress")) - retried_before
    result = load.result
    print(f"\nkill -9 of the Model replica {victim['pid']} on {victim['node']} under 16 clients:")
    print(f"  {result.requests} requests, {dict(result.statuses)}, failed: {len(result.failures)}")
    print(f"  requests whose replica died, sent again to the other one: {retried}")
    print(f"  replaced and serving after {recovered_s:.1f} s (since the kill)")
    p50, worst = result.percentile_ms(50), result.percentile_ms(100)
    print(f"  latency p50 {p50:.0f} ms, max {worst:.0f} ms")
    assert result.failures == []


def _replaced(deployed: Deployed, victim: int) -> bool:
    models = deployed.replicas("Model")
    pids = {r["pid"] for r in models}
    return len(models) == 2 and victim not in pids and all(r["version"] for r in models)


def test_model_replicas_autoscale_from_one_to_two_under_load_and_back(deployed: Deployed) -> None:
    config = deployed.config
    model = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Model")
    model.pop("num_replicas")
    model["autoscaling_config"] = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 1,
        "downscale_delay_s": 5,
        "look_back_period_s": 3,  # the load Serve averages over (default 30 s)
    }
    deployed.redeploy(config)
    count = lambda: len([r for r in deployed.replicas("Model") if r["version"]])  # noqa: E731
    down_s = deployed.wait_for(lambda: count() == 1, what="the idle cluster to scale to 1")
    with Load(deployed, clients=16) as load:
        up_s = deployed.wait_for(lambda: count() == 2, what="scaling up to 2 under load")
        time.sleep(2)
    back_s = deployed.wait_for(lambda: count() == 1, what="scaling back to 1 when idle")
    print(f"\nautoscaling (min 1, max 2): 1 replica {down_s:.1f} s after the switch;")
    print(f"  16 clients -> 2 replicas in {up_s:.1f} s; idle again -> 1 in {back_s:.1f} s;")
    print(f"  requests under load: {dict(load.result.statuses)}")
    assert load.result.failures == []
