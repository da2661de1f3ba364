"""Retrain jobs through the API, with real trainer child processes (random backbone, tiny data)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.conftest import write_class_folders, write_colour_dataset
from tests.support.apps import make_settings, running
from tests.support.modelfactory import colour_kernel, publish_tiny

pytestmark = pytest.mark.slow

TOKEN = "test-admin-58a08e126ae498b216740430"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["blue", "green", "red"]
QUICK = {"folds": 3, "seed": 1}


def _settings(store: ModelStore, data: Path, **extra: Any) -> Any:
    return make_settings(
        store.root, admin_token=TOKEN, data_dir=data, retrain_weights="none", **extra
    )


def _store(tmp_path: Path, sign: float) -> ModelStore:
    """A store whose active version is perfect (sign 1) or always wrong (sign -1) on the colours."""
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, weights=colour_kernel(CLASSES, sign), val_accuracy=max(sign, 0))
    return store


def _wait(client: TestClient, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def test_a_better_model_is_activated_and_served_without_restart(tmp_path: Path) -> None:
    store = _store(tmp_path, sign=-1)
    data = write_colour_dataset(tmp_path / "data")
    with running(_settings(store, data)) as client:
        accepted = client.post("/admin/retrain", json=QUICK, headers=AUTH)
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        assert accepted.json()["status_url"] == f"/admin/jobs/{job_id}"
        seen_running = client.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
        job = _wait(client, job_id)
        served = client.get("/classes").json()
        listed = client.get("/admin/jobs", headers=AUTH).json()
        first = client.get(f"/admin/jobs/{job_id}/log?limit=5", headers=AUTH).json()
        rest = client.get(f"/admin/jobs/{job_id}/log?offset=5&limit=1000", headers=AUTH).json()
        unknown = client.get("/admin/jobs/abc123/log", headers=AUTH)
        too_many = client.get(f"/admin/jobs/{job_id}/log?limit=1001", headers=AUTH)
    assert len(first["lines"]) == 5 and first["next_offset"] == 5
    whole = first["lines"] + rest["lines"]
    assert len(whole) == first["total_lines"] == rest["next_offset"] > len(job["log_tail"])
    assert whole[-len(job["log_tail"]) :] == job["log_tail"]
    assert (unknown.status_code, too_many.status_code) == (404, 422)
    assert seen_running["state"] in ("running", "succeeded")
    assert job["state"] == "succeeded", job
    assert job["result"]["version"] == 2 and job["result"]["activated"] is True
    assert ">=" in job["result"]["reason"] and "active version 1" in job["result"]["reason"]
    assert job["progress"]["phase"] == "done" and job["progress"]["fraction"] == 1.0
    assert job["progress"]["overall"] == 1.0
    assert list(job["plan"]) == [
        "scan", "weights", "features", "evaluate", "train_head", "fine_tune", "publish"
    ]  # fmt: skip
    assert set(job["phase_seconds"]) == set(job["plan"])  # each phase's real time, publish too
    assert job["started_at"] and job["finished_at"] and job["log_tail"]
    assert any("fold 3/3  accuracy" in line for line in whole)
    assert any("fine_tune epoch 4/4" in line for line in whole)
    assert served["model_version"] == "2"
    assert store.active_number() == 2
    assert [j["id"] for j in listed] == [job_id]
    with running(_settings(store, data)) as restarted:  # the record outlives the server
        assert restarted.get(f"/admin/jobs/{job_id}", headers=AUTH).json()["state"] == "succeeded"


def test_if_better_keeps_the_active_version_when_the_new_one_is_worse(tmp_path: Path) -> None:
    store = _store(tmp_path, sign=1)
    data = write_colour_dataset(tmp_path / "data")
    with running(_settings(store, data)) as client:
        job_id = client.post(
            "/admin/retrain",
            json={"head": "mlp", "epochs": 1, "learning_rate": 1e-7, "folds": 0},
            headers=AUTH,
        ).json()["job_id"]
        job = _wait(client, job_id)
        served = client.get("/classes").json()["model_version"]
    assert job["state"] == "succeeded", job
    assert job["result"]["activated"] is False
    assert "<" in job["result"]["reason"] and "1.0000" in job["result"]["reason"]
    assert served == "1" and store.active_number() == 1
    assert [v.number for v in store.versions()] == [1, 2]  # published, not activated


def test_one_job_at_a_time_and_cancel_publishes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, sign=1)
    data = write_colour_dataset(tmp_path / "data")
    with running(_settings(store, data)) as client:
        job_id = client.post("/admin/retrain", json={"epochs": 50}, headers=AUTH).json()["job_id"]
        second = client.post("/admin/retrain", headers=AUTH)
        assert second.status_code == 409
        assert job_id in second.json()["detail"]
        time.sleep(3)
        cancelled = client.delete(f"/admin/jobs/{job_id}", headers=AUTH)
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        assert client.delete(f"/admin/jobs/{job_id}", headers=AUTH).status_code == 409
        after = client.post("/admin/retrain", json=QUICK, headers=AUTH)
        assert after.status_code == 202  # the single-job slot is free again
        client.delete(f"/admin/jobs/{after.json()['job_id']}", headers=AUTH)
    assert [v.number for v in store.versions()] == [1]
    assert not list(store.root.glob(".staging-*"))


def test_a_failed_job_reports_why_and_leaves_the_active_model_untouched(tmp_path: Path) -> None:
    store = _store(tmp_path, sign=1)
    data = write_class_folders(tmp_path / "data", {"only_one": 4})
    with running(_settings(store, data)) as client:
        job_id = client.post("/admin/retrain", headers=AUTH).json()["job_id"]
        job = _wait(client, job_id)
        served = client.get("/classes").json()["model_version"]
    assert job["state"] == "failed"
    assert "at least 2" in job["error"]
    assert served == "1" and store.active_number() == 1
    assert [v.number for v in store.versions()] == [1]
