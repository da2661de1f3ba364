"""The served version follows the store's active pointer, through everything a shared store can
do to it: garbled or missing pointers, broken and repaired versions, unapproved versions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ACTIVE_FILE, METADATA_FILE, MODEL_FILE, ModelStore
from tests.support.apps import make_settings, running
from tests.support.modelfactory import publish_tiny

pytestmark = pytest.mark.slow

TOKEN = "follow-the-store-1c8cc5ba4599a5a7ae3082fe"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["a", "b", "c"]
POLL_S = 0.1


def _serving(client: TestClient) -> str | None:
    body = client.get("/health/live").json()
    return body["model_version"]  # type: ignore[no-any-return]


def _eventually(check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def _store(tmp_path: Path, versions: int = 2) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    for seed in range(versions):
        publish_tiny(store, CLASSES, seed=seed)
    return store


def _settings(store: ModelStore) -> object:
    return make_settings(store.root, poll_interval_s=POLL_S, admin_token=TOKEN)


@pytest.mark.parametrize("garbage", [b"\xff", b"9" * 5000])
def test_a_garbled_pointer_is_survived_and_a_fixed_one_followed(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        assert _serving(client) == "2"
        (store.root / ACTIVE_FILE).write_bytes(garbage)
        time.sleep(10 * POLL_S)  # ten polls of a garbled pointer
        assert _serving(client) == "2" and client.get("/health/ready").status_code == 200
        store.set_active(1)  # fixing the file: the poller is alive and follows it
        _eventually(lambda: _serving(client) == "1")
    assert sum("not a version number" in r.getMessage() for r in caplog.records) == 1


def test_a_server_started_on_a_garbled_pointer_serves_and_recovers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store.root / ACTIVE_FILE).write_bytes(b"\xff")
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        assert _serving(client) == "2"  # the newest approved version
        store.set_active(1)
        _eventually(lambda: _serving(client) == "1")


def test_a_version_that_failed_to_load_is_retried_once_repaired(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=1)
    broken = publish_tiny(store, CLASSES, seed=5, activate=False)
    good_model = (broken.path / MODEL_FILE).read_bytes()
    (broken.path / MODEL_FILE).write_bytes(b"")
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        (store.root / ACTIVE_FILE).write_text(f"{broken.number}\n")
        time.sleep(5 * POLL_S)
        assert _serving(client) == "1"  # the broken version was refused; 1 still serves
        (broken.path / MODEL_FILE).write_bytes(good_model)  # the operator repairs it
        _eventually(lambda: _serving(client) == str(broken.number))
        models = client.get("/admin/models", headers=AUTH).json()
    assert models["active"] == models["serving"] == str(broken.number)


def test_activating_the_serving_version_with_unreadable_metadata_is_409(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        (store.root / "2" / METADATA_FILE).write_text("{not json")
        response = client.post("/admin/models/2/activate", headers=AUTH)
        assert response.status_code == 409
        assert "metadata.json is unreadable" in response.json()["detail"]
        assert _serving(client) == "2"


def test_a_deleted_pointer_keeps_what_serves_and_never_promotes_an_unapproved_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path, versions=1)
    with store.staging() as folder:  # version 2, published with activate=never
        publish_tiny(ModelStore(tmp_path / "scratch"), CLASSES, seed=3, activate=False)
        (folder / MODEL_FILE).write_bytes((tmp_path / "scratch" / "1" / MODEL_FILE).read_bytes())
        metadata = {"classes": CLASSES, "activation": {"policy": "never", "activated": False}}
        store.publish(folder, metadata)
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        assert _serving(client) == "1"
        (store.root / ACTIVE_FILE).unlink()
        time.sleep(10 * POLL_S)
        assert _serving(client) == "1"
    warnings = [r for r in caplog.records if "no active pointer" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert "keeping version 1" in warnings[0].getMessage()


def test_a_version_with_an_empty_model_file_is_refused_at_activation(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store.root / "1" / MODEL_FILE).write_bytes(b"")
    with running(_settings(store)) as client:  # type: ignore[arg-type]
        response = client.post("/admin/models/1/activate", headers=AUTH)
        listed = client.get("/admin/models", headers=AUTH).json()
    assert response.status_code == 409
    assert "model.keras is empty or not a Keras archive" in response.json()["detail"]
    assert [v["version"] for v in listed["versions"]] == ["2"]
