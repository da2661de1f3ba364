"""Soak (long profile: `pytest -m long tests/e2e/test_soak.py -s`): sustained load on two real
replicas sharing one store, with a retrain and two version switches in the middle; the second
replica is refused a retrain while the first one's runs (one job at a time across both), and
runs one of its own afterwards. Reports memory over time and latency percentiles before, during
and after; asserts zero failed requests and bounded memory."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import psutil
import pytest

from app.store.versions import ModelStore
from bench import load
from tests.conftest import write_colour_dataset
from tests.support.modelfactory import COLOURS, publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.long

TOTAL_REQUESTS = int(os.environ.get("FLOWERS_SOAK_REQUESTS", "20000"))
CONCURRENCY = 8
TOKEN = "soak-admin-25e1812dd29b2e53beded328"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEMORY_GROWTH_BOUND_MB = 100


def test_soak_with_a_retrain_and_two_switches(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    classes = sorted(COLOURS)
    publish_tiny(store, classes, seed=1)
    publish_tiny(store, classes, seed=2, activate=False)
    data = write_colour_dataset(tmp_path / "data", per_class=6)
    photos = sorted(data.rglob("*.jpg"))
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(data),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_LOG_LEVEL": "warning",
        "FLOWERS_POLL_INTERVAL_S": "1",
    }
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    with running_server(env) as server, running_server(env) as replica:
        bases = [server.base, replica.base]
        process = psutil.Process(server.process.pid)
        sampler = threading.Thread(target=_sample, args=(process, samples, stop))
        sampler.start()
        bodies = load.multipart_bodies(photos, 1, 64)
        for base in bases:
            asyncio.run(load.run(base, bodies, CONCURRENCY, 1, 5))  # warm-up, not counted
        warm_rss = float(process.memory_info().rss) / 2**20
        phases = {}
        per_phase = TOTAL_REQUESTS // 3
        phases["before"] = _until(bases, bodies, per_phase)
        job = _retrain(server.base)
        assert job.status_code == 202, job.text
        refused = _retrain(replica.base)  # one job at a time across the replicas
        switcher = threading.Thread(target=_switch_twice, args=(server.base,))
        switcher.start()
        phases["during"] = _until(bases, bodies, per_phase)
        switcher.join()
        state = _job_done(server.base, job.json()["job_id"])
        second = _retrain(replica.base)
        assert second.status_code == 202, second.text
        phases["after"] = _until(bases, bodies, TOTAL_REQUESTS - 2 * per_phase)
        second_state = _job_done(replica.base, second.json()["job_id"])
        stop.set()
        sampler.join()
        end_rss = float(process.memory_info().rss) / 2**20
    report = {name: _summary(results) for name, results in phases.items()}
    served = sum(r["requests"] for r in report.values())
    failed = sum(r["failed"] for r in report.values())
    rss = [mb for _, mb in samples]
    print(
        f"\nsoak on 2 replicas: {served} requests, {failed} failed; retrain on replica 1 "
        f"{state}; replica 2's retrain meanwhile: {refused.status_code} "
        f"({refused.json()['detail']}); its own retrain afterwards: {second_state}; replica 1 RSS "
        f"after warm-up {warm_rss:.0f} MB, peak {max(rss):.0f} MB, end {end_rss:.0f} MB"
    )
    print(
        "memory over time (s, MB):",
        [(round(t), round(mb)) for t, mb in samples[:: max(1, len(samples) // 12)]],
    )
    for name, summary in report.items():
        print(f"  {name:<6} {summary}")
    assert failed == 0
    assert served >= TOTAL_REQUESTS
    assert refused.status_code == 409 and state == second_state == "succeeded"
    assert end_rss - warm_rss < MEMORY_GROWTH_BOUND_MB


def _sample(
    process: psutil.Process, samples: list[tuple[float, float]], stop: threading.Event
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, float(process.memory_info().rss) / 2**20))
        stop.wait(1.0)


def _until(bases: list[str], bodies: list[tuple[bytes, str]], count: int) -> list[load.LoadResult]:
    """Load both replicas at once (half the clients each) until ``count`` requests are done."""
    results: list[load.LoadResult] = []

    async def both() -> list[load.LoadResult]:
        runs = (load.run(base, bodies, CONCURRENCY // 2, 1, 3) for base in bases)
        return list(await asyncio.gather(*runs))

    while sum(r.requests + sum(r.errors.values()) for r in results) < count:
        results.extend(asyncio.run(both()))
    return results


def _retrain(base: str) -> httpx.Response:
    body = {"epochs": 2, "activate": "never"}
    return httpx.post(f"{base}/admin/retrain", json=body, headers=AUTH, timeout=30)


def _switch_twice(base: str) -> None:
    for version in (2, 1):
        time.sleep(3)
        response = httpx.post(f"{base}/admin/models/{version}/activate", headers=AUTH, timeout=60)
        assert response.status_code == 200


def _job_done(base: str, job_id: str) -> str:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/admin/jobs/{job_id}", headers=AUTH, timeout=30).json()["state"]
        if state not in ("queued", "running"):
            return str(state)
        time.sleep(1)
    return "still running"


def _summary(results: list[load.LoadResult]) -> dict[str, float | int]:
    latencies = np.array([ms for r in results for ms in r.latencies_ms])
    seconds = sum(r.seconds for r in results)
    return {
        "requests": int(sum(r.requests for r in results)),
        "failed": int(sum(sum(r.errors.values()) for r in results)),
        "req/s": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }
