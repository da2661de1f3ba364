"""Apps built with their own settings over a temporary store of tiny real Keras models, run
in-process (TestClient runs the lifespan)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def make_settings(store_root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_store": store_root,
        "engine": "tensorflow",
        "max_batch_size": 8,
        "max_batch_delay_ms": 5,
        "poll_interval_s": 0,
        **overrides,
    }
    return Settings(**values)


def wait_ready(client: TestClient, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/health/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("the app never became ready")
        time.sleep(0.05)


@contextlib.contextmanager
def running(settings: Settings, ready: bool = True) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        if ready:
            wait_ready(client)
        yield client


def engine_of(client: TestClient) -> Any:
    """The engine serving in a running app's process, for tests that wrap its predict."""
    service = client.app.state.service  # type: ignore[attr-defined]
    return service.backend.models._loaded.engine
