"""Flags through the API: anyone flags a photo (rate limited, one photo, validated, bounded), an
operator reviews it (listed, its photo, accepted into the dataset or rejected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import make_settings, running

TOKEN = "test-admin-58a08e126ae498b216740430"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(store: ModelStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        store.root, admin_token=TOKEN, data_dir=tmp_path / "data", max_flags=3, flags_per_minute=5
    )
    with running(settings) as started:
        yield started


def _flag(client: TestClient, data: bytes, query: str = "suggested=roses", **files: Any) -> Any:
    parts = files.get("parts") or [("file", ("mine.jpg", data, "image/jpeg"))]
    return client.post(f"/flags?{query}", files=parts)


def test_anyone_flags_a_photo_and_an_operator_files_it_under_the_class_they_choose(
    client: TestClient, tmp_path: Path
) -> None:
    photo = make.jpeg(seed=1)
    answer = _flag(client, photo, "suggested=roses&predicted=tulips&model_version=1")
    assert answer.status_code == 202 and answer.json()["queued"] is True
    flag_id = answer.json()["id"]
    again = _flag(client, photo, "suggested=daisy")
    assert again.status_code == 202 and again.json() == {**answer.json(), "queued": False}
    (listed,) = client.get("/admin/flags", headers=AUTH).json()
    assert (listed["id"], listed["suggested"], listed["predicted"], listed["model_version"]) == (
        flag_id,
        "roses",
        "tulips",
        "1",
    )
    image = client.get(listed["image_url"], headers=AUTH)
    assert image.content == photo and image.headers["content-type"] == "image/jpeg"
    assert not (tmp_path / "data").exists()  # a flag is not a label
    accepted = client.post(
        f"/admin/flags/{flag_id}/accept", json={"class_name": "daisy"}, headers=AUTH
    )
    assert accepted.status_code == 200
    stored = accepted.json()["stored_as"]
    assert stored.startswith("daisy/") and (tmp_path / "data" / stored).read_bytes() == photo
    assert client.get("/admin/flags", headers=AUTH).json() == []


def test_a_rejected_flag_leaves_nothing_behind(client: TestClient, store: ModelStore) -> None:
    flag_id = _flag(client, make.jpeg(seed=2)).json()["id"]
    assert client.delete(f"/admin/flags/{flag_id}", headers=AUTH).json()["id"] == flag_id
    assert list((store.root / "flags").iterdir()) == []
    assert client.delete(f"/admin/flags/{flag_id}", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("query", "data", "status", "says"),
    [
        ("suggested=sunflowerz", None, 422, "not one of the classes"),
        ("suggested=..%2Fetc", None, 422, "suggested"),
        ("", None, 422, "suggested"),
        ("suggested=roses&model_version=abc", None, 422, "model_version"),
        ("suggested=roses", b"shopping list", 400, "not a decodable image"),
    ],
)
def test_a_bad_flag_is_refused_with_its_reason_and_queues_nothing(
    client: TestClient, store: ModelStore, query: str, data: bytes | None, status: int, says: str
) -> None:
    answer = _flag(client, make.jpeg(seed=3) if data is None else data, query)
    assert answer.status_code == status and says in answer.text, answer.text
    assert client.get("/admin/flags", headers=AUTH).json() == []


def test_a_flag_carries_one_photo(client: TestClient) -> None:
    parts = [("files", (f"{n}.jpg", make.jpeg(seed=n), "image/jpeg")) for n in (4, 5)]
    answer = _flag(client, b"", parts=parts)
    assert answer.status_code == 413 and "exactly one photo, not 2" in answer.text


def test_the_queue_is_bounded_and_each_client_rate_limited(client: TestClient) -> None:
    codes = [_flag(client, make.jpeg(seed=10 + n)).status_code for n in range(4)]
    assert codes == [202, 202, 202, 503]  # max_flags=3: an operator must review first
    assert _flag(client, make.jpeg(seed=20)).status_code == 503  # the 5th of this minute
    full = _flag(client, make.jpeg(seed=21))
    assert full.status_code == 429 and "at most 5 every 60 s" in full.text  # 5 a minute
    assert full.headers["Retry-After"]


def test_flagging_can_be_turned_off(store: ModelStore, tmp_path: Path) -> None:
    with running(make_settings(store.root, admin_token=TOKEN, max_flags=0)) as off:
        answer = _flag(off, make.jpeg())
        assert answer.status_code == 409 and "FLOWERS_MAX_FLAGS=0" in answer.text
        assert off.get("/admin/flags", headers=AUTH).status_code == 409


@pytest.mark.parametrize("flag_id", ["0" * 12, "..%2F..%2Fjobs", "ABCDEF123456", "a" * 13])
def test_unknown_or_unsafe_flag_ids_touch_nothing(
    client: TestClient, store: ModelStore, flag_id: str
) -> None:
    _flag(client, make.jpeg(seed=30))
    before = sorted(store.root.rglob("*"))
    for method, path in (
        ("GET", f"/admin/flags/{flag_id}/image"),
        ("POST", f"/admin/flags/{flag_id}/accept"),
        ("DELETE", f"/admin/flags/{flag_id}"),
    ):
        answer = client.request(method, path, headers=AUTH, json={})
        assert answer.status_code in (404, 405, 422), (path, answer.text)
    assert sorted(store.root.rglob("*")) == before
