"""The Open Inference Protocol's REST routes in the real app: one data plane with /predict."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient

from app.inference.limits import size_text
from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import FLOWERS, engine_of, make_settings, running
from tests.support.modelfactory import publish_tiny
from tests.support.v2client import MAX_FILES, MAX_UPLOAD, v2_request, v2_result

INFER = "/v2/models/flowers/infer"
PHOTOS = [make.jpeg(seed=1), make.png(seed=2), make.jpeg(seed=3, size=(90, 120))]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("v2") / "store")
    publish_tiny(store, FLOWERS, seed=0)
    publish_tiny(store, FLOWERS, seed=1, activate=False)
    return store


@pytest.fixture(scope="module")
def client(two_versions: ModelStore) -> Iterator[TestClient]:
    settings = make_settings(
        two_versions.root, max_upload_bytes=MAX_UPLOAD, max_files_per_request=MAX_FILES
    )
    with running(settings) as client:
        yield client


def _predict(client: TestClient, images: list[bytes]) -> dict[str, Any]:
    files = [("files", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _infer(client: TestClient, images: list[bytes], path: str = INFER, **kwargs: Any) -> Any:
    body, headers = v2_request(images, **kwargs)
    return client.post(path, content=body, headers=headers)


def test_server_metadata_names_the_extensions(client: TestClient) -> None:
    body = client.get("/v2").json()
    assert body["name"] == "flower-classifier"
    assert body["extensions"] == ["binary_tensor_data", "classification"]
    assert body["version"]


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/flowers/ready").json() == {"name": "flowers", "ready": True}
    assert client.get("/v2/models/flowers/versions/1/ready").status_code == 200


def test_model_metadata_lists_the_stores_versions_and_the_tensors(client: TestClient) -> None:
    body = client.get("/v2/models/flowers").json()
    assert body == {
        "name": "flowers",
        "versions": ["1", "2"],
        "platform": "tensorflow",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(FLOWERS)]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    }
    assert client.get("/v2/models/flowers/versions/1").json() == body


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/resnet", "unknown model 'resnet': this server serves 'flowers'"),
        ("/v2/models/resnet/ready", "unknown model 'resnet'"),
        ("/v2/models/flowers/versions/2", "version '2' of 'flowers' is not loaded"),
        ("/v2/models/flowers/versions/2/ready", "(version 1 serves)"),
        ("/v2/models/flowers/versions/latest", "version 'latest' of 'flowers' is not loaded"),
    ],
)
def test_an_unknown_model_or_a_version_that_does_not_serve_is_404(
    client: TestClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert message in response.json()["error"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_answers_what_predict_answers_for_the_same_files(
    client: TestClient, binary: bool
) -> None:
    result = v2_result(_infer(client, PHOTOS, binary=binary, request_id="req-42"))
    predicted = _predict(client, PHOTOS)
    expected = [list(p["probabilities"].values()) for p in predicted["predictions"]]
    assert np.abs(result.as_numpy("probabilities") - np.array(expected)).max() <= 1e-6
    assert result.as_numpy("probabilities").dtype == np.float32
    labels = [label.decode() for label in result.as_numpy("label").tolist()]
    assert labels == [p["class_name"] for p in predicted["predictions"]]
    response = result.get_response()
    assert response["model_version"] == predicted["model_version"] == "1"
    assert response["id"] == "req-42"


def test_a_large_json_request_is_answered_like_predict(client: TestClient) -> None:
    # 4 images near the upload limit: ~330 KB of base64, parsed off the event loop
    padded = [data + b"\0" * (MAX_UPLOAD - len(data) - 1) for data in [*PHOTOS, PHOTOS[0]]]
    result = v2_result(_infer(client, padded, binary=False))
    expected = [list(p["probabilities"].values()) for p in _predict(client, padded)["predictions"]]
    assert np.abs(result.as_numpy("probabilities") - np.array(expected)).max() <= 1e-6


def test_outputs_come_as_json_or_binary_as_each_one_asks(client: TestClient) -> None:
    outputs = [
        triton.InferRequestedOutput("label", binary_data=False),
        triton.InferRequestedOutput("probabilities", binary_data=True),
    ]
    response = _infer(client, PHOTOS[:1], outputs=outputs)
    result = v2_result(response)
    [label, probabilities] = result.get_response()["outputs"]
    assert label["name"] == "label" and label["data"] == result.as_numpy("label").tolist()
    assert probabilities["parameters"] == {"binary_data_size": 4 * len(FLOWERS)}


def test_only_the_requested_outputs_are_answered(client: TestClient) -> None:
    result = v2_result(_infer(client, PHOTOS, outputs=[triton.InferRequestedOutput("label")]))
    assert [output["name"] for output in result.get_response()["outputs"]] == ["label"]


def test_the_classification_extension_gives_the_k_best_as_score_index_label(
    client: TestClient,
) -> None:
    outputs = [triton.InferRequestedOutput("probabilities", class_count=2)]
    result = v2_result(_infer(client, PHOTOS, outputs=outputs))
    top = result.as_numpy("probabilities")
    assert top.shape == (len(PHOTOS), 2)
    for row, prediction in zip(top, _predict(client, PHOTOS)["predictions"], strict=True):
        entries = [entry.decode().split(":") for entry in row]
        probabilities = prediction["probabilities"]
        ranked = sorted(probabilities, key=lambda name: -probabilities[name])[:2]
        assert [label for _, _, label in entries] == ranked
        assert [int(index) for _, index, _ in entries] == [FLOWERS.index(n) for n in ranked]
        assert [float(score) for score, _, _ in entries] == pytest.approx(
            [probabilities[name] for name in ranked], abs=1e-6
        )


def test_a_bad_image_gets_400_with_the_message_of_predict(client: TestClient) -> None:
    response = _infer(client, [PHOTOS[0], b"just some text\n"])
    assert response.status_code == 400
    error = response.json()["error"]
    files = {"file": ("notes.jpg", b"just some text\n", "image/jpeg")}
    detail = client.post("/predict", files=files).json()["detail"]
    assert error.removeprefix("image[1]: ") == detail.removeprefix("notes.jpg: ")
    assert error.startswith("image[1]: the bytes are not a decodable image")


def test_a_version_that_does_not_serve_cannot_infer(client: TestClient) -> None:
    response = _infer(client, PHOTOS[:1], path="/v2/models/flowers/versions/2/infer")
    assert response.status_code == 404
    assert "version '2' of 'flowers' is not loaded" in response.json()["error"]
    pinned = _infer(client, PHOTOS[:1], path="/v2/models/flowers/versions/1/infer")
    assert v2_result(pinned).get_response()["model_version"] == "1"
    assert _infer(client, PHOTOS[:1], path="/v2/models/tulip/infer").status_code == 404


def _json_request(**tensor: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", **tensor}]}


REFUSED: dict[str, tuple[Callable[[TestClient], Any], int, str]] = {
    "more images than allowed": (
        lambda c: _infer(c, [PHOTOS[0]] * (MAX_FILES + 1)),
        413,
        f"at most {MAX_FILES} images per request",
    ),
    "an image over the upload limit": (
        lambda c: _infer(c, [PHOTOS[0], b"\xff\xd8" + b"0" * MAX_UPLOAD]),
        413,
        f"image[1]: the file is over the {size_text(MAX_UPLOAD)} limit",
    ),
    "a body declared over the limit": (
        lambda c: c.post(INFER, content=b"{}", headers={"Content-Length": str(10**9)}),
        413,
        "the request body is over",
    ),
    "another input name": (
        lambda c: c.post(
            INFER, json={"inputs": [{**_json_request(data=["AAAA"])["inputs"][0], "name": "x"}]}
        ),
        400,
        "takes one input, 'image'",
    ),
    "another datatype": (
        lambda c: c.post(INFER, json=_json_request(datatype="FP32", data=[1.0])),
        400,
        "input 'image' is BYTES (encoded image files), not FP32",
    ),
    "a shape that does not match the data": (
        lambda c: c.post(INFER, json=_json_request(shape=[2], data=["AAAA"])),
        400,
        "has shape [2] but 1 elements",
    ),
    "no image": (
        lambda c: c.post(INFER, json=_json_request(shape=[0], data=[])),
        400,
        "holds no image",
    ),
    "an unknown output": (
        lambda c: _infer(c, PHOTOS[:1], outputs=[triton.InferRequestedOutput("logits")]),
        400,
        "has no output 'logits'",
    ),
    "classification of the label": (
        lambda c: _infer(
            c, PHOTOS[:1], outputs=[triton.InferRequestedOutput("label", class_count=1)]
        ),
        400,
        "classification applies to 'probabilities' only",
    ),
    "binary data without its header length": (
        lambda c: c.post(INFER, content=v2_request(PHOTOS[:1])[0]),
        400,
        "needs the Inference-Header-Content-Length header",
    ),
    # Python refuses to parse integers of more than 4,300 digits, and JSON nested deeper than its
    # recursion limit: each was a 500 with a traceback in the log.
    "a header length of 5,000 digits": (
        lambda c: c.post(
            INFER, content=b"{}", headers={"Inference-Header-Content-Length": "9" * 5000}
        ),
        400,
        "Inference-Header-Content-Length must be a byte count",
    ),
    "a JSON integer of 5,000 digits": (
        lambda c: c.post(INFER, content=b'{"inputs": [], "id": ' + b"9" * 5000 + b"}"),
        400,
        "not valid JSON",
    ),
    "data nested 1,000 deep": (
        lambda c: c.post(INFER, content=_deep_data(1000)),
        400,
        "nested too deeply",
    ),
    "parameters nested 1,000 deep": (
        lambda c: c.post(INFER, content=_deep_parameters(1000)),
        400,
        "nested too deeply",
    ),
}


def _deep_data(depth: int) -> bytes:
    tensor = '{"name": "image", "shape": [1], "datatype": "BYTES", "data": '
    return f'{{"inputs": [{tensor}{"[" * depth}"AAAA"{"]" * depth}}}]}}'.encode()


def _deep_parameters(depth: int) -> bytes:
    tensor = '{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["AAAA"]}'
    nested = '{"a": ' * depth + "1" + "}" * depth
    return f'{{"inputs": [{tensor}], "parameters": {nested}}}'.encode()


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_request_gets_its_status_and_the_protocols_error_body(
    client: TestClient, case: str
) -> None:
    send, status, message = REFUSED[case]
    response = send(client)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"], response.json()
    assert v2_result(_infer(client, PHOTOS[:1])).as_numpy("label").shape == (1,)


def test_v2_and_predict_share_the_batcher_and_the_metrics(two_versions: ModelStore) -> None:
    settings = make_settings(two_versions.root, max_batch_delay_ms=200, max_batch_size=16)
    with running(settings) as client:
        engine = engine_of(client)
        original, calls = engine.predict, []
        engine.predict = lambda images: calls.append(len(images)) or original(images)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda i: (
                        _infer(client, [PHOTOS[i % 3]]) if i % 2 else _predict(client, PHOTOS[:1])
                    ),
                    range(8),
                )
            )
        _infer(client, [b"not an image"])
        metrics = client.get("/metrics").text
    assert all(isinstance(a, dict) or a.status_code == 200 for a in answers)
    assert sum(calls) == 8 and len(calls) < 8, calls
    assert "flowers_images_predicted_total 8.0" in metrics
    assert 'flowers_requests_rejected_total{reason="corrupt_image"} 1.0' in metrics
    assert 'route="/v2/models/{model_name}/infer",status="200"' in metrics


def test_overload_is_503_with_retry_after_in_the_protocols_body(two_versions: ModelStore) -> None:
    settings = make_settings(
        two_versions.root, max_batch_size=1, max_batch_delay_ms=0, queue_limit=2
    )
    with running(settings) as client:
        engine = engine_of(client)
        original = engine.predict
        engine.predict = lambda images: time.sleep(0.25) or original(images)
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(lambda i: _infer(client, [PHOTOS[0]]), range(10)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and len(refused) <= 7
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all("at capacity" in r.json()["error"] for r in refused)


def test_without_a_model_v2_is_live_but_not_ready(tmp_path: Path) -> None:
    with running(make_settings(tmp_path / "empty"), ready=False) as client:
        assert client.get("/v2/health/live").status_code == 200
        for path in ("/v2/health/ready", "/v2/models/flowers/ready", "/v2/models/flowers"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "no model is loaded" in response.json()["error"]
        assert _infer(client, PHOTOS[:1]).status_code == 503


def test_a_new_version_serves_v2_at_once_after_a_swap(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, FLOWERS, seed=0)
    with running(make_settings(store.root)) as client:
        publish_tiny(store, ["red", "green"], seed=3, activate=True)
        client.portal.call(client.app.state.service.backend.follower.sync)  # type: ignore[attr-defined]
        metadata = client.get("/v2/models/flowers").json()
        result = v2_result(_infer(client, PHOTOS[:1]))
    assert metadata["versions"] == ["1", "2"]
    assert metadata["outputs"][0]["shape"] == [-1, 2]
    assert result.get_response()["model_version"] == "2"
    assert result.as_numpy("probabilities").shape == (1, 2)
