from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import imaging
from app.ml import network
from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.agreement import assert_within_tolerance, precisions_to_test
from tests.support.apps import FLOWERS, make_settings, running


def _files(*payloads: bytes, field: str = "files") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (f"img{i}.jpg", data, "image/jpeg")) for i, data in enumerate(payloads)]


def _direct(store: ModelStore, data: bytes, version: int = 1) -> np.ndarray:
    model = network.load(store.get(version).model_path)
    return np.asarray(model(imaging.preprocess(data)[None].astype(np.float32)))[0]


def test_one_image_gets_softmax_probabilities_and_its_class(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"file": ("rose.jpg", make.jpeg(seed=1), "image/jpeg")}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    [prediction] = body["predictions"]
    assert prediction["filename"] == "rose.jpg"
    assert list(prediction["probabilities"]) == FLOWERS
    assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-5
    best = max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert prediction["class_name"] == best
    assert prediction["confidence"] == prediction["probabilities"][best]


def test_many_images_come_back_in_upload_order(client: TestClient) -> None:
    payloads = [make.jpeg(seed=s) for s in range(5)]
    files = [("file", ("first.jpg", payloads[0], "image/jpeg")), *_files(*payloads[1:])]
    body = client.post("/predict", files=files).json()
    assert [p["filename"] for p in body["predictions"]] == [
        "first.jpg",
        "img0.jpg",
        "img1.jpg",
        "img2.jpg",
        "img3.jpg",
    ]


def test_probabilities_equal_the_saved_model_on_preprocessed_bytes(
    client: TestClient, store: ModelStore
) -> None:
    for data in (make.jpeg(seed=4), make.encode(make.gradient(seed=9).convert("RGBA"), "PNG")):
        body = client.post("/predict", files=_files(data)).json()
        served = np.array(list(body["predictions"][0]["probabilities"].values()))
        assert np.allclose(served, _direct(store, data), atol=1e-5)


@pytest.mark.parametrize("precision", precisions_to_test())
def test_openvino_engine_serves_within_its_precision_tolerance(
    store: ModelStore, precision: str
) -> None:
    from tests.support.modelfactory import publish_tiny

    version = publish_tiny(store, FLOWERS, seed=0, openvino=True)
    settings = make_settings(store.root, engine="auto", engine_precision=precision)
    with running(settings) as client:
        info = client.get("/model").json()
        assert info["engine"] == "openvino" and info["version"] == str(version.number)
        assert info["precision"] in (("bf16", "f32") if precision == "auto" else (precision,))
        assert info["float_precision"] == info["precision"]  # a float IR: all of it
        data = make.jpeg(seed=12)
        body = client.post("/predict", files=_files(data)).json()
        metrics = client.get("/metrics").text
    assert f'float_precision="{info["precision"]}",precision="{info["precision"]}"' in metrics
    served = np.array(list(body["predictions"][0]["probabilities"].values()))
    expected = _direct(store, data, version.number)
    assert_within_tolerance(served[None], expected[None], info["precision"])


def test_an_int8_ir_is_named_with_the_arithmetic_of_its_float_layers(tmp_path: Path) -> None:
    """INT8 serves with its float layers in f32 or bf16 (as publishing checked them): /model
    and the metrics say which, beside ``int8``."""
    pytest.importorskip("nncf")
    from app.ml import engines
    from tests.support.modelfactory import colour_kernel, publish_tiny

    store, colours = ModelStore(tmp_path / "store"), ["blue", "green", "red"]
    version = publish_tiny(store, colours, weights=colour_kernel(colours), int8=True)
    expected = engines.int8_float_precision(version, engines.cpu_capabilities())
    settings = make_settings(store.root, engine="auto", engine_precision="int8")
    with running(settings) as client:
        info = client.get("/model").json()
        metrics = client.get("/metrics").text
    assert (info["precision"], info["float_precision"]) == ("int8", expected)
    assert f'float_precision="{expected}",precision="int8"' in metrics


def test_top_k_returns_the_most_probable_classes_in_order(client: TestClient) -> None:
    body = client.post("/predict?top_k=2", files=_files(make.jpeg(seed=2))).json()
    probabilities = body["predictions"][0]["probabilities"]
    assert len(probabilities) == 2
    values = list(probabilities.values())
    assert values == sorted(values, reverse=True)
    assert body["predictions"][0]["class_name"] == next(iter(probabilities))


@pytest.mark.parametrize("top_k", ["0", "-1", "abc"])
def test_invalid_top_k_is_422(client: TestClient, top_k: str) -> None:
    assert client.post(f"/predict?top_k={top_k}", files=_files(make.jpeg())).status_code == 422


def test_classes_lists_the_output_order(client: TestClient) -> None:
    assert client.get("/classes").json() == {"model_version": "1", "classes": FLOWERS}


def test_model_describes_version_engine_device_and_batching(client: TestClient) -> None:
    info = client.get("/model").json()
    assert info["version"] == "1"
    assert info["classes"] == FLOWERS
    assert info["val_accuracy"] == 0.5
    assert info["engine"] == "tensorflow"
    assert info["device"] == "CPU"
    assert info["batching"]["max_batch_size"] == 8
    assert info["batching"]["batch_sizes"] == [1, 2, 3, 4, 6, 8]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    assert info["limits"] == {
        "max_file_bytes": settings.max_upload_bytes,
        "max_files_per_request": settings.max_files_per_request,
        "max_image_pixels": settings.max_image_pixels,
    }


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok", "model_version": "1"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == "1"


def test_request_id_is_echoed_or_created(client: TestClient) -> None:
    echoed = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    created = client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert len(created.headers["x-request-id"]) == 32
    error = client.post("/predict", files=_files(b"nope"), headers={"X-Request-ID": "req-9"})
    assert error.json()["request_id"] == "req-9"


def test_security_headers_are_set(client: TestClient) -> None:
    headers = client.get("/classes").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]
    docs = client.get("/docs").headers["content-security-policy"]
    assert "script-src 'self'" in docs and "unsafe-eval" not in docs and "cdn" not in docs


def test_methods_outside_the_apis_own_are_counted_as_other(client: TestClient) -> None:
    """A client chooses the method: each one the HTTP parser accepts (34 of them) was a new series
    per route and status, so one client could grow /metrics without bound."""
    odd = ("PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH", "REPORT", "M-SEARCH", "SOURCE")
    for method in odd:
        for path in ("/classes", "/predict", "/v2/models/flowers/infer", "/nowhere"):
            assert client.request(method, path).status_code in (404, 405)
    text = client.get("/metrics").text
    assert not [method for method in odd if f'method="{method}"' in text]
    assert 'flowers_http_requests_total{method="other",route="/classes",status="405"} 8.0' in text
    methods = {
        line.split('method="')[1].split('"')[0] for line in text.splitlines() if 'method="' in line
    }
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_metrics_expose_requests_batches_and_the_model(client: TestClient) -> None:
    client.post("/predict", files=_files(make.jpeg(), make.jpeg(seed=1)))
    client.post("/predict", files=_files(b"not an image"))
    text = client.get("/metrics").text
    assert 'flowers_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert (
        'flowers_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/predict",status="200"}'
        in text
    )
    assert "flowers_images_predicted_total 2.0" in text
    assert "flowers_batch_size_count" in text
    assert "flowers_inference_seconds_count" in text
    assert "flowers_batch_queue_depth 0.0" in text
    model_info = (
        'flowers_model_info{device="CPU",engine="tensorflow",float_precision="f32",'
        'precision="f32",version="1"}'
    )
    assert f"{model_info} 1.0" in text
    assert 'flowers_requests_rejected_total{reason="corrupt_image"} 1.0' in text


def test_openapi_documents_the_contract_and_error_codes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(predict["responses"])
    assert "multipart/form-data" in predict["requestBody"]["content"]
    assert {"/classes", "/model", "/health/live", "/health/ready", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_every_image_upload_route_documents_this_apps_file_limit(store: ModelStore) -> None:
    with running(make_settings(store.root, max_files_per_request=5), ready=False) as client:
        spec = client.get("/openapi.json").json()
    documented = {
        path: operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        for path, item in spec["paths"].items()
        for operation in item.values()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
    }
    assert set(documented) == {"/predict", "/admin/dataset/{class_name}", "/flags"}
    flag = documented.pop("/flags")
    assert flag["required"] == ["file"] and "files" not in flag["properties"]  # one photo a flag
    for schema in documented.values():
        assert schema["anyOf"][1]["properties"]["files"]["maxItems"] == 5


def test_test_time_flips_are_served_and_said(tmp_path: Path) -> None:
    """FLOWERS_TTA=flip: the engine's name says so, and each answer is the average of the saved
    model's on the photo and on its mirror image."""
    from tests.support.modelfactory import publish_tiny

    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, FLOWERS, seed=4)
    with running(make_settings(store.root, tta="flip")) as client:
        assert client.get("/model").json()["engine"] == "tensorflow+flip"
        data = make.jpeg(seed=9, size=(64, 40))
        body = client.post("/predict", files={"file": ("x.jpg", data, "image/jpeg")}).json()
    image = imaging.preprocess(data)[None].astype(np.float32)
    model = network.load(version.model_path)
    expected = (np.asarray(model(image)) + np.asarray(model(image[:, :, ::-1]))) / 2
    served = [body["predictions"][0]["probabilities"][name] for name in FLOWERS]
    np.testing.assert_allclose(served, expected[0], atol=1e-5)
