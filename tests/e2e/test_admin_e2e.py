"""End to end on the real server: add labelled images, retrain, and the new version serves."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image

from app.store.versions import ModelStore
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

TOKEN = "e2e-admin-3ab2a20a79d124e82d5af898"
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
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(tmp_path / "data"),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_POLL_INTERVAL_S": "1",
    }
    with (
        running_server(env, capture=True, stop=False) as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        assert client.get("/classes").json()["model_version"] == "1"
        for name, colour in COLOURS.items():
            files = [
                ("files", (f"{name}{i}.jpg", _photo(colour, i), "image/jpeg")) for i in range(6)
            ]
            added = client.post(f"/admin/dataset/{name}", files=files, headers=AUTH).json()
            assert len(added["stored"]) == 6, added
        assert client.get("/admin/dataset", headers=AUTH).json()["total_images"] == 24
        accepted = client.post(
            "/admin/retrain", json={"epochs": 2, "activate": "always"}, headers=AUTH
        )
        assert accepted.status_code == 202
        job = _poll(client, accepted.json()["status_url"])
        assert job["state"] == "succeeded", job
        classes = client.get("/classes").json()
        photo = _photo(COLOURS["purple"], 99)
        prediction = client.post("/predict", files={"file": ("p.jpg", photo, "image/jpeg")}).json()
        server.process.terminate()
        output, _ = server.process.communicate(timeout=60)
    assert classes == {"model_version": "2", "classes": ["blue", "green", "purple", "red"]}
    assert prediction["model_version"] == "2"
    assert set(prediction["predictions"][0]["probabilities"]) == set(COLOURS)
    assert server.process.returncode == 0, output  # flowers-serve: a graceful stop exits 0


def _poll(client: httpx.Client, url: str) -> dict[str, object]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(url, headers=AUTH).json()
        if job["state"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.5)
    raise TimeoutError("the job did not finish")
