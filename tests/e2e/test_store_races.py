"""Races a shared store invites, against real servers: an operator's rollback while a retrain
publishes, and two replicas sharing one store with one job between them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.conftest import write_colour_dataset
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

TOKEN = "race-admin-64d64eafa84484beb9822235"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["blue", "green", "red"]


def _env(tmp_path: Path, store: ModelStore, poll_s: str) -> dict[str, str]:
    return {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(write_colour_dataset(tmp_path / "data")),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_POLL_INTERVAL_S": poll_s,
        "FLOWERS_LOG_LEVEL": "warning",
    }


def _pointer(store: ModelStore) -> str:
    with contextlib.suppress(OSError):
        return (store.root / "active").read_text().strip()
    return ""


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
    return job


def test_a_rollback_just_after_a_retrain_activates_is_what_serves(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES)
    with (
        running_server(_env(tmp_path, store, poll_s="0")) as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        body = {"epochs": 2, "activate": "always"}
        job_id = client.post("/admin/retrain", json=body, headers=AUTH).json()["job_id"]
        while _pointer(store) != "2":  # the trainer has just activated its version
            assert _job(client, job_id)["state"] in ("queued", "running")
            time.sleep(0.01)
        rollback = client.post("/admin/models/1/activate", headers=AUTH)
        while _job(client, job_id)["state"] in ("queued", "running"):
            time.sleep(0.1)
        job = _job(client, job_id)
        models = client.get("/admin/models", headers=AUTH).json()
    print(
        f"\nrolled back to 1 as the job activated 2 ({rollback.status_code}); job {job['state']};"
        f" active {models['active']}, serving {models['serving']}"
    )
    assert rollback.status_code == 200 and job["state"] == "succeeded"
    assert models["active"] == models["serving"] == "1"  # the operator's choice stands


def test_replicas_sharing_a_store_keep_one_job_between_them(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES)
    env = _env(tmp_path, store, poll_s="1")
    record = store.root / "jobs"
    states: list[str] = []
    with (
        running_server(env) as first,
        httpx.Client(base_url=first.base, timeout=60) as a,
    ):
        body = {"epochs": 60, "activate": "never"}
        job_id = a.post("/admin/retrain", json=body, headers=AUTH).json()["job_id"]
        watching = threading.Event()

        def watch() -> None:  # the record on disk, as any replica reads it
            while not watching.is_set():
                with contextlib.suppress(OSError, ValueError):
                    states.append(json.loads((record / f"{job_id}.json").read_text())["state"])
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with (
                running_server(env) as second,  # its startup recovery runs now
                httpx.Client(base_url=second.base, timeout=60) as b,
            ):
                refused = [
                    client.post("/admin/retrain", json={"epochs": 1}, headers=AUTH)
                    for client in (a, b)
                ]
                while _job(a, job_id)["state"] in ("queued", "running"):
                    time.sleep(0.2)
                finished = _job(a, job_id)
                after = b.post("/admin/retrain", json={"epochs": 1}, headers=AUTH)
        finally:
            watching.set()
            watcher.join()
    print(
        f"\nA's job as recorded while B started: {sorted(set(states))}; retrains meanwhile: "
        f"A {refused[0].status_code}, B {refused[1].status_code} "
        f"({refused[1].json().get('detail')}); A's job then {finished['state']}; "
        f"B's next: {after.status_code}"
    )
    assert "failed" not in states  # a live replica's job is never recovered as interrupted
    assert [r.status_code for r in refused] == [409, 409]
    assert all(job_id in r.json()["detail"] for r in refused)
    assert finished["state"] == "succeeded"
    assert after.status_code == 202
