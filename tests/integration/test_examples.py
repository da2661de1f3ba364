"""GET /model's examples and GET /examples/{version}/{index}: public, read-only, listed only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import FLOWERS, make_settings, running
from tests.support.modelfactory import publish_tiny

DAISY = make.jpeg(seed=1, size=(64, 48))
ROSE = make.jpeg(seed=2, size=(48, 64))
CREDITS = ("CC-BY by Ann - https://example.org/1", "CC-BY by Bob - https://example.org/2")


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, FLOWERS, seed=0)  # version 1: none
    examples = [("daisy", DAISY, CREDITS[0]), ("roses", ROSE, CREDITS[1])]
    publish_tiny(store, FLOWERS, seed=1, examples=examples)  # version 2, active
    return store


@pytest.fixture
def client(store: ModelStore) -> Iterator[TestClient]:
    with running(make_settings(store.root)) as client:
        yield client


def test_the_model_lists_its_examples_with_their_credits(client: TestClient) -> None:
    body = client.get("/model").json()
    assert body["version"] == "2"
    assert body["examples"] == [
        {
            "url": "/examples/2/0",
            "class_name": "daisy",
            "credit": CREDITS[0],
            "license": "https://creativecommons.org/licenses/by/2.0/",
        },
        {
            "url": "/examples/2/1",
            "class_name": "roses",
            "credit": CREDITS[1],
            "license": "https://creativecommons.org/licenses/by/2.0/",
        },
    ]


def test_an_example_is_its_jpeg_kept_by_the_browser(client: TestClient) -> None:
    answer = client.get("/examples/2/1")
    assert answer.status_code == 200 and answer.content == ROSE
    assert answer.headers["content-type"] == "image/jpeg"
    assert "immutable" in answer.headers["cache-control"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    # and it classifies like any upload
    predicted = client.post("/predict", files={"file": ("rose.jpg", ROSE, "image/jpeg")})
    assert predicted.status_code == 200


def test_a_version_without_examples_lists_none(store: ModelStore) -> None:
    store.set_active(1)
    with running(make_settings(store.root)) as client:
        assert client.get("/model").json()["examples"] == []
        assert client.get("/examples/1/0").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/examples/2/2", 404),  # past the list
        ("/examples/9/0", 404),  # no such version
        ("/examples/0/0", 422),
        ("/examples/2/-1", 422),
        ("/examples/2/1000", 422),
        ("/examples/2/99999999999999999999999", 422),
        ("/examples/2/0.jpg", 422),
        ("/examples/2/..%2Fmetadata.json", 404),  # a slash: no such route
        ("/examples/2/%2e%2e", 422),
        ("/examples/2/../2/metadata.json", 422),  # resolved to /examples/2/metadata.json
        ("/examples/2", 404),
    ],
)
def test_nothing_but_a_listed_example_is_served(client: TestClient, path: str, status: int) -> None:
    answer = client.get(path)
    assert answer.status_code == status, path
    assert b'"classes"' not in answer.content  # never a version's metadata
    assert answer.json()["detail"]  # the project's error body, saying what is wrong


def test_a_tampered_metadata_cannot_point_outside_the_examples(store: ModelStore) -> None:
    """An example's file comes from metadata.json; one that names another file is not served."""
    metadata_path = store.root / "2" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["examples"]["photos"][0]["file"] = "metadata.json"
    metadata["examples"]["photos"][1]["file"] = "examples/../../1/model.keras"
    metadata_path.write_text(json.dumps(metadata))
    with running(make_settings(store.root)) as client:
        assert client.get("/examples/2/0").status_code == 404
        assert client.get("/examples/2/1").status_code == 404
