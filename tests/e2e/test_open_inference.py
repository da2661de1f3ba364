"""The Open Inference Protocol with the real clients (tritonclient.http in binary and JSON modes,
tritonclient.grpc) against the real server (python -m app.serve in a subprocess, gRPC on)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from app.inference.limits import size_text
from app.store.versions import ModelStore
from bench.server import free_port
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
TOKEN = "oip-admin-e5273b3b181c34fc3b12963b"
MAX_UPLOAD = 1024 * 1024
MAX_FILES = 4


@dataclass
class Server:
    base: str
    http: str  # host:port, as tritonclient takes it
    grpc: str
    photos: list[Path]

    def activate(self, version: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{self.base}/admin/models/{version}/activate"
        assert httpx.post(url, headers=headers, timeout=120).json()["serving"] == str(version)

    def predict(self, photos: list[Path]) -> dict[str, Any]:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        response = httpx.post(f"{self.base}/predict", files=files, timeout=60)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, flowers_dev: Path) -> Iterator[Server]:
    store = ModelStore(tmp_path_factory.mktemp("oip") / "store")
    publish_tiny(store, FLOWERS, seed=0, openvino=True)
    publish_tiny(store, FLOWERS, seed=1, openvino=True, activate=False)
    grpc_port = free_port()
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_GRPC_PORT": str(grpc_port),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "FLOWERS_MAX_FILES_PER_REQUEST": str(MAX_FILES),
        "FLOWERS_MAX_BATCH_SIZE": "4",
        # two batches in flight (auto: a lone batch in latency mode, overlapping ones on
        # throughput mode's streams, the setting docs/benchmarks.md gives a busy server): the
        # hot swaps under load below run with both protocols' batches side by side, in both
        # modes (test_server.py runs the default, 1; test_engines.py 0, 2 and auto)
        "FLOWERS_ENGINE_STREAMS": "auto",
        "FLOWERS_POLL_INTERVAL_S": "0",
        "FLOWERS_LOG_LEVEL": "warning",
    }
    folders = sorted(p for p in flowers_dev.iterdir() if p.is_dir())
    photos = [sorted(folder.iterdir())[0] for folder in folders]
    with running_server(env) as running:
        yield Server(running.base, f"127.0.0.1:{running.port}", f"127.0.0.1:{grpc_port}", photos)


def _images(photos: list[Path]) -> np.ndarray:
    return np.array([p.read_bytes() for p in photos], dtype=object)


def _http_infer(
    server: Server, photos: list[Path], binary: bool = True, **kwargs: Any
) -> triton_http.InferResult:
    client = triton_http.InferenceServerClient(server.http, network_timeout=120)
    images = _images(photos)
    if not binary:  # JSON mode: image files travel as base64 strings
        images = np.array([base64.b64encode(i) for i in images], dtype=object)
    tensor = triton_http.InferInput("image", [len(photos)], "BYTES")
    tensor.set_data_from_numpy(images, binary_data=binary)
    if kwargs.pop("class_count", None):
        kwargs["outputs"] = [triton_http.InferRequestedOutput("probabilities", class_count=2)]
    elif not binary:
        kwargs["outputs"] = [
            triton_http.InferRequestedOutput(name, binary_data=False)
            for name in ("probabilities", "label")
        ]
    return client.infer(kwargs.pop("model_name", "flowers"), [tensor], **kwargs)


def _grpc_infer(server: Server, photos: list[Path], **kwargs: Any) -> triton_grpc.InferResult:
    client = triton_grpc.InferenceServerClient(server.grpc)
    tensor = triton_grpc.InferInput("image", [len(photos)], "BYTES")
    tensor.set_data_from_numpy(_images(photos))
    if kwargs.pop("class_count", None):
        kwargs["outputs"] = [triton_grpc.InferRequestedOutput("probabilities", class_count=2)]
    return client.infer(kwargs.pop("model_name", "flowers"), [tensor], **kwargs)


Infer = Callable[..., Any]
CLIENTS: dict[str, Infer] = {
    "http binary": _http_infer,
    "http json": lambda server, photos, **kw: _http_infer(server, photos, binary=False, **kw),
    "grpc": _grpc_infer,
}


def _version(result: Any) -> str:
    response = result.get_response()
    return str(response["model_version"] if isinstance(response, dict) else response.model_version)


def test_health_and_metadata_over_http(server: Server) -> None:
    client = triton_http.InferenceServerClient(server.http)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("flowers") and client.is_model_ready("flowers", "1")
    assert not client.is_model_ready("flowers", "2")
    metadata = client.get_server_metadata()
    assert metadata["extensions"] == ["binary_tensor_data", "classification"]
    model = client.get_model_metadata("flowers")
    assert model["versions"] == ["1", "2"] and model["platform"] == "openvino"
    assert model["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert model["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 5]}


def test_health_and_metadata_over_grpc(server: Server) -> None:
    client = triton_grpc.InferenceServerClient(server.grpc)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("flowers") and not client.is_model_ready("flowers", "2")
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["extensions"] == ["binary_tensor_data", "classification"]
    model = client.get_model_metadata("flowers", as_json=True)
    assert model["versions"] == ["1", "2"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in model["outputs"]] == [
        ("probabilities", "FP32", ["-1", "5"]),  # int64 fields are strings in protobuf's JSON
        ("label", "BYTES", ["-1"]),
    ]


@pytest.mark.parametrize("kind", CLIENTS)
def test_real_photos_get_the_probabilities_of_predict(server: Server, kind: str) -> None:
    result = CLIENTS[kind](server, server.photos[:MAX_FILES], request_id="photos-1")
    predicted = server.predict(server.photos[:MAX_FILES])
    expected = np.array([list(p["probabilities"].values()) for p in predicted["predictions"]])
    assert np.abs(result.as_numpy("probabilities") - expected).max() <= 1e-6
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert labels == [p["class_name"] for p in predicted["predictions"]]
    assert _version(result) == predicted["model_version"] == "1"


@pytest.mark.parametrize("kind", CLIENTS)
def test_the_classification_extension(server: Server, kind: str) -> None:
    top = CLIENTS[kind](server, server.photos[:2], class_count=2).as_numpy("probabilities")
    predicted = server.predict(server.photos[:2])["predictions"]
    assert top.shape == (2, 2)
    for row, prediction in zip(top, predicted, strict=True):
        best = row[0].decode() if isinstance(row[0], bytes) else row[0]
        score, index, label = best.split(":")
        assert label == prediction["class_name"] == FLOWERS[int(index)]
        assert abs(float(score) - prediction["confidence"]) <= 1e-6


def test_grpc_inputs_in_contents_rather_than_raw_are_read_too(server: Server) -> None:
    # tritonclient always sends raw_input_contents; other clients use the typed contents
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.ModelInferRequest(model_name="flowers", id="typed")
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend(p.read_bytes() for p in server.photos[:2])
    with grpc.insecure_channel(server.grpc) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert (response.id, [o.name for o in response.outputs]) == (
        "typed",
        ["probabilities", "label"],
    )
    probabilities = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(2, 5)
    predicted = server.predict(server.photos[:2])["predictions"]
    expected = np.array([list(p["probabilities"].values()) for p in predicted])
    assert np.abs(probabilities - expected).max() <= 1e-6


def _refusal(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return str(caught.value.status()), caught.value.message()


@pytest.mark.parametrize(("kind", "status"), [("http binary", "400"), ("grpc", "INVALID_ARGUMENT")])
def test_a_bad_image_is_refused_with_the_message_of_predict(
    server: Server, kind: str, status: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"just some text\n")
    got, message = _refusal(lambda: CLIENTS[kind](server, [server.photos[0], notes]))
    files = {"file": ("notes.jpg", notes.read_bytes(), "image/jpeg")}
    detail = httpx.post(f"{server.base}/predict", files=files, timeout=30).json()["detail"]
    assert got.endswith(status)
    assert message.removeprefix("image[1]: ") == detail.removeprefix("notes.jpg: ")


@pytest.mark.parametrize(("kind", "status"), [("http binary", "404"), ("grpc", "NOT_FOUND")])
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"model_name": "resnet"}, "unknown model 'resnet'"),
        ({"model_version": "2"}, "version '2' of 'flowers' is not loaded (version 1 serves)"),
    ],
)
def test_an_unknown_model_or_version_is_not_found(
    server: Server, kind: str, status: str, target: dict[str, str], message: str
) -> None:
    got, text = _refusal(lambda: CLIENTS[kind](server, server.photos[:1], **target))
    assert got.endswith(status) and message in text


def test_an_image_over_the_upload_limit_is_refused_by_both_protocols(
    server: Server, tmp_path: Path
) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(server.photos[0].read_bytes() + b"\0" * MAX_UPLOAD)
    limit = f"image[0]: the file is over the {size_text(MAX_UPLOAD)} limit"
    assert _refusal(lambda: _http_infer(server, [big])) == ("413", limit)
    assert _refusal(lambda: _grpc_infer(server, [big])) == ("StatusCode.RESOURCE_EXHAUSTED", limit)
    bigger = tmp_path / "bigger.jpg"  # over the whole message limit: grpc refuses it itself
    bigger.write_bytes(b"\0" * (MAX_FILES + 1) * MAX_UPLOAD)
    status, message = _refusal(lambda: _grpc_infer(server, [bigger]))
    assert status == "StatusCode.RESOURCE_EXHAUSTED", message


async def _stream_until_answered(port: int, header: bytes, total_mb: int) -> tuple[int, int]:
    """POST a chunked V2 binary body of ``total_mb`` MB; (status, MB sent before the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        + f"Inference-Header-Content-Length: {len(header)}\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.readline())
    block = b"\0" * 2**20
    sent = 0
    try:
        for chunk in [header, *[block] * total_mb]:
            if answer.done():
                break
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            sent += len(chunk) // 2**20
            await asyncio.sleep(0.02)
    except (ConnectionError, OSError):
        pass
    status_line = await asyncio.wait_for(answer, 30)
    writer.close()
    return int(status_line.split()[1]), sent


def test_an_oversized_body_is_refused_while_it_streams(server: Server) -> None:
    size = 64 * 2**20  # an image tensor far over the 4 x 1 MiB limit
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    status, sent_mb = asyncio.run(
        _stream_until_answered(int(server.http.split(":")[1]), header, 64)
    )
    assert status == 413
    assert sent_mb < 16, f"{sent_mb} MB were sent before the 413"
    assert _version(_http_infer(server, server.photos[:1])) == "1"


def test_clients_of_both_protocols_see_no_failure_across_hot_swaps(server: Server) -> None:
    photos = server.photos[:2]
    expected = {}
    for version in (2, 1):  # each version's answer for the photos, to check every response
        server.activate(version)
        rows = [list(p["probabilities"].values()) for p in server.predict(photos)["predictions"]]
        expected[str(version)] = np.array(rows)
    stop = threading.Event()
    answers: dict[str, list[str]] = {kind: [] for kind in CLIENTS}
    failures: list[str] = []

    def keep_inferring(kind: str) -> None:
        while not stop.is_set():
            try:
                result = CLIENTS[kind](server, photos)
                version = _version(result)
                if np.abs(result.as_numpy("probabilities") - expected[version]).max() > 1e-6:
                    failures.append(f"{kind}: outputs not all from version {version}")
                answers[kind].append(version)
            except Exception as error:  # every failure is a test failure, reported below
                failures.append(f"{kind}: {error!r}")

    threads = [threading.Thread(target=keep_inferring, args=(kind,)) for kind in CLIENTS]
    for thread in threads:
        thread.start()
    try:
        for version in (2, 1, 2, 1):
            time.sleep(0.5)
            server.activate(version)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert failures == []
    for kind, versions in answers.items():
        assert len(versions) >= 4, (kind, versions)
    assert {v for versions in answers.values() for v in versions} == {"1", "2"}
