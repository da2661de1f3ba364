"""GET /admin/models/{v}/disagreements/{other} and /admin/models/{v}/photos/{digest}: two versions'
out-of-sample answers compared photo by photo, and the photos shown from the dataset folder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.predictions import PhotoPrediction
from app.store.versions import ModelStore
from tests.conftest import write_class_folders
from tests.support.apps import make_settings, running
from tests.support.modelfactory import publish_tiny

TOKEN = "test-admin-1d9e0c2b7a4f4e5d8c3b2a19"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["cats", "dogs"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data", {"cats": 3, "dogs": 3})


def _measured(data: Path, answers: dict[str, str]) -> list[PhotoPrediction]:
    photos = []
    for source, predicted in answers.items():
        digest = hashlib.sha256((data / source).read_bytes()).hexdigest()
        photos.append(PhotoPrediction(digest, source, source.split("/")[0], predicted, 0.75))
    return photos


@pytest.fixture
def store(tmp_path: Path, data: Path) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    first = {"cats/cats_000.jpg": "cats", "cats/cats_001.jpg": "dogs", "dogs/dogs_000.jpg": "dogs"}
    second = {"cats/cats_000.jpg": "dogs", "cats/cats_001.jpg": "cats", "dogs/dogs_000.jpg": "dogs"}
    publish_tiny(store, CLASSES, seed=0, predictions=_measured(data, first))
    publish_tiny(store, CLASSES, seed=1, predictions=_measured(data, second))
    publish_tiny(store, CLASSES, seed=2)  # version 3: recorded none
    return store


@pytest.fixture
def admin(store: ModelStore, data: Path) -> Iterator[TestClient]:
    settings = make_settings(store.root, admin_token=TOKEN, data_dir=data)
    with running(settings) as client:
        yield client


def test_two_versions_disagreements_list_each_photo_and_both_answers(admin: TestClient) -> None:
    body = admin.get("/admin/models/1/disagreements/2", headers=AUTH).json()
    assert (body["a"], body["b"], body["common"], body["total"]) == ("1", "2", 3, 2)
    assert (body["both_right"], body["only_a_right"], body["only_b_right"]) == (1, 1, 1)
    assert (body["both_wrong"], body["relabelled"]) == (0, 0)
    shown = {
        p["source"]: (p["label"], p["a"]["predicted"], p["b"]["predicted"]) for p in body["photos"]
    }
    assert shown == {
        "cats/cats_000.jpg": ("cats", "cats", "dogs"),
        "cats/cats_001.jpg": ("cats", "dogs", "cats"),
    }
    limited = admin.get("/admin/models/1/disagreements/2?limit=1", headers=AUTH).json()
    assert limited["total"] == 2 and len(limited["photos"]) == 1


def test_a_disagreed_photo_is_served_from_the_dataset(admin: TestClient, data: Path) -> None:
    photo = admin.get("/admin/models/1/disagreements/2", headers=AUTH).json()["photos"][0]
    answer = admin.get(photo["image_url"], headers=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content == (data / photo["source"]).read_bytes()
    assert "private" in answer.headers["cache-control"]
    (data / photo["source"]).write_bytes(b"replaced")  # changed since it was measured
    gone = admin.get(photo["image_url"], headers=AUTH)
    assert gone.status_code == 404 and "no longer in the dataset" in gone.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/admin/models/1/disagreements/3", 404, "recorded no per-photo predictions"),
        ("/admin/models/1/disagreements/9", 404, "9"),
        ("/admin/models/1/disagreements/2?limit=1001", 422, "limit"),
        ("/admin/models/1/disagreements/2?limit=-1", 422, "limit"),
        ("/admin/models/1/photos/" + "0" * 64, 404, "was not measured on photo"),
        ("/admin/models/3/photos/" + "0" * 64, 404, "recorded no per-photo predictions"),
        ("/admin/models/1/photos/..%2F..%2Fmetadata.json", 404, "Not Found"),
        ("/admin/models/1/photos/" + "A" * 64, 422, "digest"),
        ("/admin/models/1/photos/" + "0" * 63, 422, "digest"),
    ],
)
def test_bad_requests_get_clear_errors(
    admin: TestClient, path: str, status: int, says: str
) -> None:
    answer = admin.get(path, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_both_routes_need_the_admin_token(admin: TestClient) -> None:
    assert admin.get("/admin/models/1/disagreements/2").status_code == 401
    photo = "/admin/models/1/photos/" + "0" * 64
    assert admin.get(photo, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_without_a_dataset_folder_photos_are_a_conflict(store: ModelStore) -> None:
    with running(make_settings(store.root, admin_token=TOKEN)) as client:
        body = client.get("/admin/models/1/disagreements/2", headers=AUTH).json()
        answer = client.get(body["photos"][0]["image_url"], headers=AUTH)
        assert answer.status_code == 409, answer.text
