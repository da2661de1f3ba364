"""The admin API's version routes for the console: a version's metrics and plots, deletion, and
the retention setting."""

from __future__ import annotations

import threading
import typing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.admin import PlotName
from app.store.versions import PLOTS, ModelStore
from tests.support.apps import FLOWERS, make_settings, running
from tests.support.modelfactory import publish_tiny

TOKEN = "test-admin-58a08e126ae498b216740430"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_CLASS = {
    name: {"precision": 0.5, "recall": 0.25, "f1": 0.3333, "support": 4} for name in FLOWERS
}


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, FLOWERS, seed=0)
    publish_tiny(
        store,
        FLOWERS,
        seed=1,
        activate=False,
        plots=True,
        metrics={"per_class": PER_CLASS, "evaluation": "5-fold cross-validation"},
    )
    return store


@pytest.fixture
def admin(store: ModelStore) -> Iterator[TestClient]:
    with running(make_settings(store.root, admin_token=TOKEN, keep_versions=3)) as client:
        yield client


def test_a_version_shows_its_per_class_metrics_plots_and_metadata(admin: TestClient) -> None:
    body = admin.get("/admin/models/2", headers=AUTH).json()
    assert (body["version"], body["active"], body["serving"]) == ("2", False, False)
    assert body["evaluation"] == "5-fold cross-validation"
    assert body["per_class"]["roses"] == PER_CLASS["roses"]
    assert body["plots"] == {name: f"/admin/models/2/plots/{name}" for name in PLOTS}
    assert body["metadata"]["version"] == 2 and body["metadata"]["classes"] == FLOWERS


def test_a_versions_score_on_the_evaluation_folder_is_listed(
    admin: TestClient, store: ModelStore
) -> None:
    held = {"accuracy": 0.9317, "photos": 600, "content_hash": "0a1b2c3d4e5f6071"}
    publish_tiny(store, FLOWERS, seed=3, activate=False, evaluation_set=held)
    listed = {v["version"]: v for v in admin.get("/admin/models", headers=AUTH).json()["versions"]}
    assert (listed["3"]["eval_accuracy"], listed["3"]["eval_photos"]) == (0.9317, 600)
    assert (listed["1"]["eval_accuracy"], listed["1"]["eval_photos"]) == (None, None)
    detail = admin.get("/admin/models/3", headers=AUTH).json()
    assert detail["eval_accuracy"] == 0.9317
    assert detail["metadata"]["evaluation_set"]["content_hash"] == "0a1b2c3d4e5f6071"


def test_a_version_without_plots_or_scores_lists_none(admin: TestClient) -> None:
    body = admin.get("/admin/models/1", headers=AUTH).json()
    assert (body["active"], body["serving"], body["plots"], body["per_class"]) == (
        True,
        True,
        {},
        {},
    )
    assert body["evaluation"] is None


def test_an_unknown_version_is_404(admin: TestClient) -> None:
    response = admin.get("/admin/models/9", headers=AUTH)
    assert response.status_code == 404
    assert "version 9 does not exist" in response.json()["detail"]


def test_an_incomplete_version_is_409_with_its_reason(admin: TestClient, store: ModelStore) -> None:
    (store.root / "2" / "metadata.json").write_text("{broken")
    response = admin.get("/admin/models/2", headers=AUTH)
    assert response.status_code == 409
    assert "unreadable" in response.json()["detail"]


@pytest.mark.parametrize("name", PLOTS)
def test_plots_are_served_as_png(admin: TestClient, store: ModelStore, name: str) -> None:
    response = admin.get(f"/admin/models/2/plots/{name}", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == (store.root / "2" / name).read_bytes()
    assert response.content.startswith(b"\x89PNG")


def test_a_missing_plot_is_404(admin: TestClient) -> None:
    response = admin.get("/admin/models/1/plots/history.png", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["detail"] == "version 1 has no history.png"


@pytest.mark.parametrize(
    "name",
    [
        "metadata.json",
        "model.keras",
        "..%2Factive",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "history.png%00.json",
        "HISTORY.PNG",
        "%2E%2E",
    ],
)
def test_only_the_two_plot_names_are_served(admin: TestClient, name: str) -> None:
    response = admin.get(f"/admin/models/2/plots/{name}", headers=AUTH)
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/json"


def test_the_plot_names_of_the_route_are_the_stores() -> None:
    assert set(typing.get_args(typing.get_args(PlotName)[0])) == set(PLOTS)


def test_models_list_shows_the_retention_setting_and_evaluation(admin: TestClient) -> None:
    body = admin.get("/admin/models", headers=AUTH).json()
    assert body["keep_versions"] == 3
    assert [v["evaluation"] for v in body["versions"]] == [None, "5-fold cross-validation"]


def test_deleting_an_old_version_removes_it(admin: TestClient, store: ModelStore) -> None:
    body = admin.delete("/admin/models/2", headers=AUTH).json()
    assert [v["version"] for v in body["versions"]] == ["1"]
    assert not (store.root / "2").exists()
    assert admin.get("/admin/models/2", headers=AUTH).status_code == 404


def test_deleting_the_active_version_is_409_and_keeps_it(
    admin: TestClient, store: ModelStore
) -> None:
    response = admin.delete("/admin/models/1", headers=AUTH)
    assert response.status_code == 409
    assert "active version" in response.json()["detail"]
    assert [v.number for v in store.versions()] == [1, 2]


def test_deleting_the_version_this_server_serves_is_409(
    admin: TestClient, store: ModelStore
) -> None:
    store.set_active(2)  # moved by another process; this server (no polling) still serves 1
    response = admin.delete("/admin/models/1", headers=AUTH)
    assert response.status_code == 409
    assert "serving" in response.json()["detail"]
    assert (store.root / "1").is_dir()


def test_deleting_an_unknown_version_is_404(admin: TestClient) -> None:
    assert admin.delete("/admin/models/7", headers=AUTH).status_code == 404


def test_the_new_routes_are_documented(admin: TestClient) -> None:
    paths = admin.get("/openapi.json").json()["paths"]
    assert set(paths["/admin/models/{version}"]) == {"get", "delete"}
    plot = paths["/admin/models/{version}/plots/{plot}"]["get"]
    assert "image/png" in plot["responses"]["200"]["content"]
    assert {"404", "409", "401", "403"} <= set(
        paths["/admin/models/{version}"]["delete"]["responses"]
    )


def test_a_version_being_activated_cannot_be_deleted_and_then_serves(
    store: ModelStore, tmp_path: Path
) -> None:
    """DELETE was accepted while version 2 was loading for an activation; the activation then
    answered 404, yet version 2 was swapped in and answered /predict though deleted."""
    loading, release = threading.Event(), threading.Event()
    with running(make_settings(store.root, admin_token=TOKEN)) as client:
        loader = client.app.state.service.backend.models.loader  # type: ignore[attr-defined]
        load = loader.load

        def slow_load(version: typing.Any) -> typing.Any:
            loading.set()
            assert release.wait(30)
            return load(version)

        loader.load = slow_load
        with ThreadPoolExecutor(max_workers=1) as pool:
            activation = pool.submit(client.post, "/admin/models/2/activate", headers=AUTH)
            assert loading.wait(30)
            deletion = client.delete("/admin/models/2", headers=AUTH)
            release.set()
            activated = activation.result(timeout=60)
        assert deletion.status_code == 409, deletion.text
        assert "being loaded or activated" in deletion.json()["detail"]
        assert activated.status_code == 200, activated.text
        assert client.get("/classes").json()["model_version"] == "2"
        assert (store.root / "2").is_dir()


def test_a_note_is_written_listed_replaced_and_removed(admin: TestClient) -> None:
    written = admin.put(
        "/admin/models/2/note", json={"note": "  trained after the May uploads\n"}, headers=AUTH
    )
    assert written.status_code == 200
    assert written.json()["note"] == "trained after the May uploads"
    assert written.json()["note_updated_at"]
    listed = {
        v["version"]: v["note"] for v in admin.get("/admin/models", headers=AUTH).json()["versions"]
    }
    assert listed == {"1": None, "2": "trained after the May uploads"}
    admin.put("/admin/models/2/note", json={"note": "roses relabelled"}, headers=AUTH)
    assert admin.get("/admin/models/2", headers=AUTH).json()["note"] == "roses relabelled"
    removed = admin.put("/admin/models/2/note", json={"note": "  "}, headers=AUTH)
    assert removed.status_code == 200 and removed.json()["note"] is None


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"note": "x" * 501}, 422, "at most 500 characters"),
        ({"note": "bell\x07"}, 422, "should match pattern"),
        ({"note": "nul\x00"}, 422, "should match pattern"),
        ({"note": 7}, 422, "note"),
        ({"note": "ok", "path": "/etc"}, 422, "path"),
        ({}, 422, "note"),
        (None, 422, "note"),  # no body at all: the note is required
    ],
)
def test_a_bad_note_is_422_and_changes_nothing(
    admin: TestClient, store: ModelStore, body: object, status: int, says: str
) -> None:
    admin.put("/admin/models/2/note", json={"note": "kept"}, headers=AUTH)
    response = (
        admin.put("/admin/models/2/note", headers=AUTH)
        if body is None
        else admin.put("/admin/models/2/note", json=body, headers=AUTH)
    )
    assert response.status_code == status and says in response.text, response.text
    assert admin.get("/admin/models/2", headers=AUTH).json()["note"] == "kept"


def test_a_note_on_an_unknown_version_is_404_and_writes_nothing(
    admin: TestClient, store: ModelStore
) -> None:
    before = sorted(p for p in store.root.rglob("*"))
    response = admin.put("/admin/models/9/note", json={"note": "hello"}, headers=AUTH)
    assert response.status_code == 404
    assert sorted(p for p in store.root.rglob("*")) == before


def test_a_note_goes_with_its_deleted_version(admin: TestClient, store: ModelStore) -> None:
    admin.put("/admin/models/2/note", json={"note": "doomed"}, headers=AUTH)
    assert admin.delete("/admin/models/2", headers=AUTH).status_code == 200
    assert not (store.root / "2").exists()


def test_the_servers_paths_are_for_operators_not_for_anonymous_clients(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    dataset = {"root": "/srv/private/photos", "skipped": [{"file": "/srv/private/x.jpg"}]}
    held = {"accuracy": 0.9, "photos": 9, "folder": "/srv/private/held"}
    publish_tiny(store, FLOWERS, dataset={**dataset, "counts": {"roses": 3}}, evaluation_set=held)
    with running(make_settings(store.root, admin_token=TOKEN)) as client:
        public = client.get("/model").json()["metadata"]
        operators = client.get("/admin/models/1", headers=AUTH).json()["metadata"]
    assert "/srv/private" not in str(public)
    assert public["dataset"] == {"counts": {"roses": 3}}
    assert public["evaluation_set"] == {"accuracy": 0.9, "photos": 9}
    assert operators["dataset"]["root"] == "/srv/private/photos"
    assert operators["evaluation_set"]["folder"] == "/srv/private/held"
