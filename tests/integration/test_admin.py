"""The admin API: auth, versions and hot swap, labelled images (jobs are in test_admin_jobs)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import FLOWERS, make_settings, running
from tests.support.modelfactory import publish_tiny

TOKEN = "test-admin-58a08e126ae498b216740430"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ROUTES = [
    ("POST", "/admin/retrain"),
    ("GET", "/admin/jobs"),
    ("GET", "/admin/jobs/abc123"),
    ("GET", "/admin/jobs/abc123/log"),
    ("DELETE", "/admin/jobs/abc123"),
    ("GET", "/admin/models"),
    ("POST", "/admin/models/1/activate"),
    ("GET", "/admin/models/1"),
    ("GET", "/admin/models/1/plots/history.png"),
    ("DELETE", "/admin/models/1"),
    ("PUT", "/admin/models/1/note"),
    ("GET", "/admin/flags"),
    ("GET", "/admin/flags/0123456789ab/image"),
    ("POST", "/admin/flags/0123456789ab/accept"),
    ("DELETE", "/admin/flags/0123456789ab"),
    ("GET", "/admin/dataset"),
    ("POST", "/admin/dataset/roses"),
    ("DELETE", f"/admin/dataset/roses/{'0' * 64}.jpg"),
]


@pytest.fixture
def admin(store: ModelStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(store.root, admin_token=TOKEN, data_dir=tmp_path / "data")
    with running(settings) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_admin_route_needs_the_token(admin: TestClient, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-value-000"},
        {"Authorization": TOKEN},
        {"X-Admin-Token": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        response = admin.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
    assert admin.request(method, f"{path}?token={TOKEN}").status_code == 401


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_configured_token_the_admin_api_is_disabled(
    store: ModelStore, method: str, path: str
) -> None:
    with running(make_settings(store.root)) as client:
        response = client.request(method, path, headers=AUTH)
    assert response.status_code == 403
    assert "FLOWERS_ADMIN_TOKEN" in response.json()["detail"]


def test_placeholder_tokens_are_refused_at_startup(store: ModelStore) -> None:
    for bad in ("changeme", "short"):
        with pytest.raises(ValueError, match="FLOWERS_ADMIN_TOKEN"):
            make_settings(store.root, admin_token=bad)


def test_the_token_never_appears_in_model_metrics_or_logs(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin.get("/admin/models", headers=AUTH)
    admin.get("/admin/models", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    for path in ("/model", "/metrics", "/openapi.json"):
        assert TOKEN not in admin.get(path).text
    assert TOKEN not in caplog.text


def test_models_lists_versions_with_their_facts(admin: TestClient, store: ModelStore) -> None:
    publish_tiny(store, FLOWERS, seed=5, val_accuracy=0.7, activate=False)
    body = admin.get("/admin/models", headers=AUTH).json()
    assert body["active"] == "1" and body["serving"] == "1"
    first, second = body["versions"]
    assert (first["version"], first["active"], first["serving"]) == ("1", True, True)
    assert (second["version"], second["active"], second["val_accuracy"]) == ("2", False, 0.7)
    assert second["classes"] == FLOWERS and second["size_bytes"] > 1000 and second["created_at"]


def test_activate_switches_serving_and_the_pointer_and_back(
    admin: TestClient, store: ModelStore
) -> None:
    publish_tiny(store, ["cats", "dogs"], seed=3, activate=False)
    body = admin.post("/admin/models/2/activate", headers=AUTH).json()
    assert body["serving"] == "2" and body["active"] == "2"
    assert store.active_number() == 2
    assert admin.get("/classes").json() == {"model_version": "2", "classes": ["cats", "dogs"]}
    prediction = admin.post("/predict", files={"file": ("x.jpg", make.jpeg(), "image/jpeg")}).json()
    assert prediction["model_version"] == "2"
    assert set(prediction["predictions"][0]["probabilities"]) == {"cats", "dogs"}
    rolled_back = admin.post("/admin/models/1/activate", headers=AUTH).json()
    assert rolled_back["serving"] == "1" and store.active_number() == 1
    assert admin.get("/classes").json()["classes"] == FLOWERS


def test_activating_a_missing_version_is_404_and_changes_nothing(
    admin: TestClient, store: ModelStore
) -> None:
    response = admin.post("/admin/models/9/activate", headers=AUTH)
    assert response.status_code == 404
    assert "version 9 does not exist" in response.json()["detail"]
    assert admin.get("/classes").json()["model_version"] == "1"


@pytest.mark.parametrize("damage", ["corrupt model", "missing model", "broken metadata"])
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    admin: TestClient, store: ModelStore, damage: str
) -> None:
    version = publish_tiny(store, FLOWERS, seed=8, activate=False)
    if damage == "corrupt model":
        (version.path / "model.keras").write_bytes(b"PK\x03\x04 definitely not a model")
    elif damage == "missing model":
        (version.path / "model.keras").unlink()
    else:
        (version.path / "metadata.json").write_text("{")
    response = admin.post(f"/admin/models/{version.number}/activate", headers=AUTH)
    assert response.status_code == 409
    assert f"version {version.number} could not be loaded" in response.json()["detail"]
    assert store.active_number() == 1
    assert (
        admin.post("/predict", files={"file": ("x.jpg", make.jpeg(), "image/jpeg")}).json()[
            "model_version"
        ]
        == "1"
    )


def test_the_server_follows_the_store_pointer_moved_elsewhere(store: ModelStore) -> None:
    with running(make_settings(store.root, poll_interval_s=0.1)) as client:
        publish_tiny(store, ["cats", "dogs"], seed=2)  # e.g. the CLI or another replica
        deadline = time.monotonic() + 30
        while client.get("/classes").json()["model_version"] != "2":
            assert time.monotonic() < deadline, "the pointer change was never picked up"
            time.sleep(0.1)
        assert client.get("/classes").json()["classes"] == ["cats", "dogs"]


def test_an_unloadable_version_named_by_the_pointer_is_skipped(
    store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    with running(make_settings(store.root, poll_interval_s=0.1)) as client:
        broken = publish_tiny(store, FLOWERS, seed=4)
        (broken.path / "model.keras").write_bytes(b"garbage")
        time.sleep(1)
        assert client.get("/classes").json()["model_version"] == "1"
    assert "cannot serve" in caplog.text


def _add(client: TestClient, class_name: str, *files: tuple[str, bytes]) -> object:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post(f"/admin/dataset/{class_name}", files=parts, headers=AUTH)


def test_adding_images_stores_them_by_content_and_reports_duplicates_and_rejects(
    admin: TestClient, tmp_path: Path
) -> None:
    first, second = make.jpeg(seed=1), make.encode(make.gradient(seed=2), "PNG")
    response = _add(
        admin, "roses", ("a.jpg", first), ("b.png", second), ("c.jpg", first), ("bad.jpg", b"text")
    )
    assert response.status_code == 200
    body = response.json()
    assert [s["filename"] for s in body["stored"]] == ["a.jpg", "b.png"]
    assert body["stored"][0]["stored_as"].startswith("roses/") and body["stored"][0][
        "stored_as"
    ].endswith(".jpg")
    assert body["stored"][1]["stored_as"].endswith(".png")
    assert body["duplicates"] == [{"filename": "c.jpg", "existing": body["stored"][0]["stored_as"]}]
    assert body["rejected"][0]["filename"] == "bad.jpg" and body["rejected"][0]["status"] == 400
    again = _add(admin, "tulips", ("again.jpg", first)).json()
    assert again["stored"] == [] and again["duplicates"][0]["existing"].startswith("roses/")
    files = sorted(p.name for p in (tmp_path / "data" / "roses").iterdir())
    assert len(files) == 2 and all(len(Path(f).stem) == 64 for f in files)


def test_dataset_summary_counts_classes(admin: TestClient) -> None:
    _add(admin, "roses", ("a.jpg", make.jpeg(seed=1)), ("b.jpg", make.jpeg(seed=2)))
    _add(admin, "new_class-2", ("c.jpg", make.jpeg(seed=3)))
    body = admin.get("/admin/dataset", headers=AUTH).json()
    assert [(c["name"], c["images"]) for c in body["classes"]] == [("new_class-2", 1), ("roses", 2)]
    assert body["total_images"] == 3 and body["total_bytes"] > 0


@pytest.mark.parametrize(
    "name", ["..", ".hidden", "a.b", "with space", "x" * 65, "%2E%2E", "..%2Fetc", "%2Fabs", "é"]
)
def test_bad_class_names_are_refused_and_nothing_is_written(
    admin: TestClient, tmp_path: Path, name: str
) -> None:
    response = _add(admin, name, ("a.jpg", make.jpeg()))
    # ".." reaches the server as POST /admin (the client resolves it): the console's page,
    # which only answers GET, so 405; so does an encoded "/", which makes the path the
    # DELETE-only route of one stored photo.
    allowed = (404, 405, 422) if name == ".." or "%2F" in name else (404, 422)
    assert response.status_code in allowed, response.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [] or all("store" in p.parts for p in written)


def test_an_added_photo_can_be_removed_by_its_stored_name_once(
    admin: TestClient, tmp_path: Path
) -> None:
    stored_as = _add(admin, "roses", ("a.jpg", make.jpeg(seed=1))).json()["stored"][0]["stored_as"]
    removed = admin.delete(f"/admin/dataset/{stored_as}", headers=AUTH)
    assert removed.status_code == 200 and removed.json() == {"removed": stored_as}
    assert list((tmp_path / "data" / "roses").iterdir()) == []
    again = admin.delete(f"/admin/dataset/{stored_as}", headers=AUTH)
    assert again.status_code == 404 and stored_as in again.json()["detail"]
    # Removed means forgotten: the same bytes are stored again, not reported as a duplicate.
    assert _add(admin, "tulips", ("a.jpg", make.jpeg(seed=1))).json()["stored"]


@pytest.mark.parametrize(
    "path",
    [
        "roses/10503217854_e66a804309.jpg",  # a photo the dataset came with
        f"roses/{'0' * 64}.exe",
        f"roses/{'0' * 63}.jpg",
        f"roses/{'A' * 64}.jpg",
        f"roses/..%2F{'0' * 64}.jpg",
        f"..%2Froses/{'0' * 64}.jpg",
        "roses/%2Fetc%2Fpasswd",
        "roses/..%2F..%2Fstore",
    ],
)
def test_only_a_stored_name_can_be_removed_and_nothing_else_is_touched(
    admin: TestClient, tmp_path: Path, path: str
) -> None:
    original = tmp_path / "data" / "roses" / "10503217854_e66a804309.jpg"
    original.parent.mkdir(parents=True)
    original.write_bytes(make.jpeg(seed=4))
    before = sorted(p for p in tmp_path.rglob("*"))
    response = admin.delete(f"/admin/dataset/{path}", headers=AUTH)
    assert response.status_code in (404, 405, 422), response.text
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_dataset_routes_need_a_configured_folder(store: ModelStore) -> None:
    with running(make_settings(store.root, admin_token=TOKEN)) as client:
        response = client.get("/admin/dataset", headers=AUTH)
    assert response.status_code == 409 and "FLOWERS_DATA_DIR" in response.json()["detail"]


def test_retrain_body_is_validated(admin: TestClient) -> None:
    for body in (
        {"epochs": 0},
        {"epochs": 10_000},
        {"learning_rate": -1},
        {"validation_split": 0.9},
        {"activate": "sometimes"},
        {"surprise": 1},
    ):
        response = admin.post("/admin/retrain", json=body, headers=AUTH)
        assert response.status_code == 422, (body, response.text)


@pytest.mark.parametrize(
    "body",
    [
        b'{"l2": NaN}',
        b'{"learning_rate": Infinity}',
        b'{"dropout": -Infinity}',
        b'{"epochs": 3, "l2": NaN}',
        b'{"seed": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    ],
    ids=["NaN", "Infinity", "-Infinity", "NaN beside a valid field", "20,000 deep"],
)
def test_a_retrain_body_json_cannot_carry_is_a_422_not_a_500(
    admin: TestClient, body: bytes
) -> None:
    """NaN and Infinity are not JSON (RFC 8259): they made a 422 body that could not be written
    (a 500); a deeply nested body overflowed the parser's recursion (a 500 too)."""
    headers = {**AUTH, "Content-Type": "application/json"}
    response = admin.post("/admin/retrain", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert admin.get("/health/live").status_code == 200


def test_unknown_jobs_are_404(admin: TestClient) -> None:
    assert admin.get("/admin/jobs/deadbeef", headers=AUTH).status_code == 404
    assert admin.delete("/admin/jobs/deadbeef", headers=AUTH).status_code == 404
    assert admin.get("/admin/jobs", headers=AUTH).json() == []


def test_a_job_left_running_by_a_dead_server_is_failed_as_interrupted(store: ModelStore) -> None:
    jobs = store.root / "jobs"
    jobs.mkdir()
    record = {
        "id": "abc123",
        "state": "running",
        "params": {},
        "created_at": "2026-01-01T00:00:00+00:00",
        "pid": 999999,
    }
    (jobs / "abc123.json").write_text(json.dumps(record))
    with running(make_settings(store.root, admin_token=TOKEN)) as client:
        job = client.get("/admin/jobs/abc123", headers=AUTH).json()
    assert job["state"] == "failed" and job["error"].startswith("interrupted")


def test_admin_routes_keep_their_prefix_in_metrics(admin: TestClient) -> None:
    admin.get("/admin/jobs/abc123", headers=AUTH)
    admin.get("/admin/models", headers=AUTH)
    metrics = admin.get("/metrics").text
    assert 'route="/admin/jobs/{job_id}"' in metrics and 'route="/admin/models"' in metrics
    assert 'route="/jobs/{job_id}"' not in metrics


def test_a_class_differing_only_by_case_from_an_existing_one_is_refused(
    admin: TestClient, tmp_path: Path
) -> None:
    photo = {"files": ("rose.jpg", make.jpeg(seed=3), "image/jpeg")}
    assert admin.post("/admin/dataset/roses", files=photo, headers=AUTH).status_code == 200
    typo = admin.post("/admin/dataset/Roses", files=photo, headers=AUTH)
    assert typo.status_code == 422
    assert "differs from the existing class 'roses' only by case" in typo.json()["detail"][0]["msg"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")) == [
        "roses"
    ]
