"""End to end on the real server: add labelled images, retrain, and the new version serves."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image

from app.store import ModelStore
from tests.conftest import REPO, free_port
from tests.modelfactory import publish_tiny

pytestmark = pytest.mark.slow

TOKEN = "e2e-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COLOURS = {
    "blue": (20, 40, 220),
    "green": (30, 200, 40),
    "red": (210, 30, 30),
    "purple": (150, 30, 160),
}


def _photo(colour: tuple[int, int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 48, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_labelled_images_retrain_and_the_new_version_serves_without_restart(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, ["blue", "green", "red"])
    port = free_port()
    env = {
        **os.environ,
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(tmp_path / "data"),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_POLL_INTERVAL_S": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            _wait_ready(client, server)
            assert client.get("/classes").json()["model_version"] == "1"
            for name, colour in COLOURS.items():
                files = [
                    ("files", (f"{name}{i}.jpg", _photo(colour, i), "image/jpeg")) for i in range(6)
                ]
                added = client.post(f"/admin/dataset/{name}", files=files, headers=AUTH).json()
                assert len(added["stored"]) == 6, added
            dataset = client.get("/admin/dataset", headers=AUTH).json()
            assert dataset["total_images"] == 24
            accepted = client.post(
                "/admin/retrain", json={"epochs": 2, "activate": "always"}, headers=AUTH
            )
            assert accepted.status_code == 202
            job = _poll(client, accepted.json()["status_url"])
            assert job["state"] == "succeeded", job
            classes = client.get("/classes").json()
            prediction = client.post(
                "/predict", files={"file": ("p.jpg", _photo(COLOURS["purple"], 99), "image/jpeg")}
            ).json()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert classes == {"model_version": "2", "classes": ["blue", "green", "purple", "red"]}
    assert prediction["model_version"] == "2"
    assert set(prediction["predictions"][0]["probabilities"]) == set(COLOURS)
    assert server.returncode == 0, output


def _wait_ready(client: httpx.Client, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        try:
            if client.get("/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError("not ready")


def _poll(client: httpx.Client, url: str) -> dict[str, object]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(url, headers=AUTH).json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise TimeoutError("the job did not finish")
