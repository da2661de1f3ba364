"""Every documented error status answers with the same JSON shape: the message, the request id
(equal to the X-Request-ID header) and the security headers, whoever raised it (our handlers,
FastAPI's validation, Starlette's routing, or a bug)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.http import errors
from tests.support import imagefactory as make
from tests.support.apps import FLOWERS, engine_of, make_settings, running
from tests.support.modelfactory import store_with_versions

TOKEN = "walk-the-errors-b27e154240fab007e05192cc"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "cache-control", "referrer-policy")

Send = Callable[[TestClient], Any]


def _image(name: str, data: bytes, path: str = "/predict", **extra: Any) -> Send:
    return lambda client: client.post(path, files={"file": (name, data, "image/jpeg")}, **extra)


def _slow_engine(client: TestClient) -> None:
    engine = engine_of(client)
    original = engine.predict

    def slow(images: np.ndarray) -> np.ndarray:
        time.sleep(0.5)
        return original(images)

    engine.predict = slow


def _broken_engine(client: TestClient) -> None:
    engine = engine_of(client)

    def broken(images: np.ndarray) -> np.ndarray:
        raise RuntimeError("GPU on fire")

    engine.predict = broken


def _unexpected_bug(client: TestClient) -> None:
    def bug() -> None:
        raise KeyError("a bug")

    client.app.state.service.backend.models.ready_model = bug  # type: ignore[attr-defined]


CASES: dict[str, tuple[Send, int]] = {
    "400 not an image": (_image("notes.jpg", b"just text"), 400),
    "400 malformed multipart": (
        lambda c: c.post(
            "/predict", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
        ),
        400,
    ),
    "400 multipart boundary of 300 characters": (
        lambda c: c.post(
            "/predict",
            content=b"--" + b"b" * 300 + b"\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=" + "b" * 300},
        ),
        400,
    ),
    "400 the same boundary on the dataset route": (
        lambda c: c.post(
            "/admin/dataset/roses",
            content=b"--" + b"b" * 300 + b"\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=" + "b" * 300, **AUTH},
        ),
        400,
    ),
    "401 no token": (lambda c: c.get("/admin/models"), 401),
    "404 unknown route": (lambda c: c.get("/no/such/route"), 404),
    "404 trailing slash (no redirect built from Host)": (
        lambda c: c.get("/classes/", headers={"Host": "evil.example"}, follow_redirects=False),
        404,
    ),
    "404 unknown job": (lambda c: c.get("/admin/jobs/deadbeef", headers=AUTH), 404),
    "404 unknown version": (lambda c: c.post("/admin/models/99/activate", headers=AUTH), 404),
    "405 wrong method": (lambda c: c.delete("/predict"), 405),
    "413 too many files": (
        lambda c: c.post(
            "/predict",
            files=[("files", (f"{i}.jpg", make.jpeg(seed=i), "image/jpeg")) for i in range(3)],
        ),
        413,
    ),
    "415 svg": (_image("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'), 415),
    "415 not multipart": (lambda c: c.post("/predict", json={"image": "x"}), 415),
    "422 bad top_k 0": (_image("a.jpg", make.jpeg(), params={"top_k": 0}), 422),
    "422 bad top_k abc": (_image("a.jpg", make.jpeg(), params={"top_k": "abc"}), 422),
    "422 unknown retrain field": (
        lambda c: c.post("/admin/retrain", json={"surprise": 1}, headers=AUTH),
        422,
    ),
    "422 version not a number": (lambda c: c.post("/admin/models/abc/activate", headers=AUTH), 422),
    "422 bad class name": (
        _image("a.jpg", make.jpeg(), path="/admin/dataset/no%20spaces", headers=AUTH),
        422,
    ),
    "422 no image part": (lambda c: c.post("/predict", files={"note": (None, "hi")}), 422),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("errors")
    store = store_with_versions(root / "store", FLOWERS)
    settings = make_settings(
        store.root, admin_token=TOKEN, data_dir=root / "data", max_files_per_request=2
    )
    with running(settings) as client:
        yield client


def assert_error_shape(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"], body
    assert body["detail"], body
    for header in SECURITY_HEADERS:
        assert header in response.headers, header


@pytest.mark.parametrize("case", CASES)
def test_every_error_has_the_request_id_and_the_security_headers(
    client: TestClient, case: str
) -> None:
    send, status = CASES[case]
    assert_error_shape(send(client), status)
    assert client.get("/health/ready").status_code == 200  # and the server keeps serving


def test_the_admin_api_disabled_is_403_with_the_same_shape(tmp_path: Path) -> None:
    store = store_with_versions(tmp_path / "store", FLOWERS)
    with running(make_settings(store.root)) as client:
        assert_error_shape(client.get("/admin/models"), 403)


def test_409_not_ready_503_and_the_batch_errors_have_the_same_shape(tmp_path: Path) -> None:
    with running(make_settings(tmp_path / "empty", admin_token=TOKEN), ready=False) as client:
        assert_error_shape(_image("a.jpg", make.jpeg())(client), 503)
        assert_error_shape(client.get("/admin/dataset", headers=AUTH), 409)
    store = store_with_versions(tmp_path / "store", FLOWERS)
    with running(make_settings(store.root, request_timeout_s=0.1, max_batch_delay_ms=0)) as client:
        _slow_engine(client)
        assert_error_shape(_image("a.jpg", make.jpeg())(client), 504)
    with running(make_settings(store.root)) as client:
        _broken_engine(client)
        assert_error_shape(_image("a.jpg", make.jpeg())(client), 500)


def test_a_bug_answers_500_in_the_same_shape_and_the_server_goes_on(tmp_path: Path) -> None:
    store = store_with_versions(tmp_path / "store", FLOWERS)
    with running(make_settings(store.root)) as client:
        original = client.app.state.service.backend.models.ready_model  # type: ignore[attr-defined]
        _unexpected_bug(client)
        response = client.get("/classes")
        client.app.state.service.backend.models.ready_model = original  # type: ignore[attr-defined]
        after = client.get("/classes")
    assert_error_shape(response, 500)
    assert response.json()["detail"] == "internal server error"  # nothing internal leaks
    assert after.status_code == 200


def test_a_422_never_echoes_a_large_input(client: TestClient) -> None:
    response = client.post("/admin/retrain", json={"epochs": "x" * 60_000}, headers=AUTH)
    assert_error_shape(response, 422)
    assert len(response.content) < 2_000
    assert "characters omitted" in response.text


def test_a_json_body_over_the_cap_is_413(client: TestClient) -> None:
    response = client.post("/admin/retrain", json={"epochs": "x" * 100_000}, headers=AUTH)
    assert_error_shape(response, 413)
    assert "over 65,536 bytes" in response.json()["detail"]


def test_too_many_flags_from_one_client_is_429_in_the_same_shape(tmp_path: Path) -> None:
    store = store_with_versions(tmp_path / "store", FLOWERS)
    with running(make_settings(store.root, flags_per_minute=1)) as client:
        first = _image("a.jpg", make.jpeg(seed=1), path="/flags?suggested=roses")(client)
        assert first.status_code == 202, first.text
        second = _image("b.jpg", make.jpeg(seed=2), path="/flags?suggested=roses")(client)
    assert_error_shape(second, 429)
    assert second.headers["Retry-After"]


def test_every_documented_status_is_walked() -> None:
    walked = {status for _, status in CASES.values()} | {403, 409, 429, 500, 503, 504}
    assert set(errors.DESCRIPTIONS) - walked <= {408}  # 408 needs a stalled socket: tests/e2e
