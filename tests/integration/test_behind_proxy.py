"""The app as the cluster runs it: behind Ray Serve's proxy, which owns X-Request-ID on responses;
and what a single process says about replicas (nothing)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from app.store.versions import ModelStore
from tests.support.apps import make_settings, wait_ready


def test_behind_the_proxy_the_request_id_is_used_but_not_added_again(store: ModelStore) -> None:
    app = create_app(make_settings(store.root), request_id_header=False)
    with TestClient(app) as client:
        wait_ready(client)
        proxied = {"X-Request-ID": "2f7b6a1e-93c4-4a44-9d7e-1b1f0c0f6a11"}  # what Serve sends
        error = client.post("/predict", files={"file": ("a.jpg", b"not an image")}, headers=proxied)
        ok = client.get("/classes", headers=proxied)
    assert error.status_code == 400
    assert error.json()["request_id"] == proxied["X-Request-ID"]
    assert "x-request-id" not in error.headers and "x-request-id" not in ok.headers
    assert ok.headers["x-content-type-options"] == "nosniff"  # the other headers stay


def test_a_single_process_lists_no_replicas(client: TestClient) -> None:
    assert "replicas" not in client.get("/model").json()
    assert "replicas" not in client.get("/health/ready").json()
    assert "replicas" not in client.get("/health/live").json()
