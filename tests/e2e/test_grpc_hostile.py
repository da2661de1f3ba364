"""The gRPC service against hostile clients, on the real server (python -m app.serve, gRPC on):
messages that are not protobuf, cut short or mutated, huge repeated fields and huge names. Each
gets the right status code with a short message, is counted in the metrics, and the server goes
on serving. The messages are built with tritonclient's copy of the protocol (the same wire
format), so that ours never enters this process (see tests/unit/v2/test_generated.py)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx2 as httpx
import pytest
import tritonclient.grpc.service_pb2 as triton_pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.store.versions import ModelStore
from bench.server import free_port
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.servers import Server, metric_value, running_server

pytestmark = pytest.mark.slow

SERVICE = "/inference.GRPCInferenceService"
# What a hostile message may get: never UNKNOWN or INTERNAL (a bug), never a dropped stream.
REFUSALS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
MAX_DETAILS = 1000


class Grpc:
    def __init__(self, server: Server, address: str) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(address)

    def call(self, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
        """Send raw bytes as the method's message; the status code and the details."""
        unary = self.channel.unary_unary(f"{SERVICE}/{method}")
        try:
            unary(data, timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    def metrics(self) -> str:
        return httpx.get(f"{self.server.base}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grpc]:
    store = ModelStore(tmp_path_factory.mktemp("grpc") / "store")
    publish_tiny(store, ["daisy", "roses", "tulips"])
    grpc_port = free_port()
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_GRPC_PORT": str(grpc_port),
        "FLOWERS_ENGINE": "tensorflow",
        "FLOWERS_MAX_FILES_PER_REQUEST": "4",
        "FLOWERS_MAX_UPLOAD_BYTES": str(256 * 1024),
        "FLOWERS_LOG_LEVEL": "warning",
    }
    with running_server(env) as server:
        grpc_client = Grpc(server, f"127.0.0.1:{grpc_port}")
        yield grpc_client
        grpc_client.channel.close()


def _infer(**fields: object) -> triton_pb.ModelInferRequest:
    message = triton_pb.ModelInferRequest(model_name="flowers", **fields)  # type: ignore[arg-type]
    if not message.inputs:
        photo = make.jpeg(seed=3)
        message.inputs.add(name="image", datatype="BYTES", shape=[1])
        message.raw_input_contents.append(len(photo).to_bytes(4, "little") + photo)
    return message


def _healthy(client: Grpc) -> None:
    code, details = client.call("ModelInfer", _infer().SerializeToString())
    assert code is grpc.StatusCode.OK, details


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\xff not a protobuf",
        _infer().SerializeToString()[:40],
        b"\x0a\xff\xff\xff\x0f",
    ],
    ids=["garbage", "cut short", "a length beyond the end"],
)
def test_a_message_that_cannot_be_read_is_invalid_argument_and_counted(
    client: Grpc, data: bytes
) -> None:
    before = _count(client.metrics(), "ModelInfer", "400")
    code, details = client.call("ModelInfer", data)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert "the ModelInfer message cannot be read" in details
    assert _count(client.metrics(), "ModelInfer", "400") == before + 1
    _healthy(client)


def _count(metrics: str, method: str, status: str) -> float:
    series = f'method="GRPC",route="{SERVICE}/{method}",status="{status}"'
    return metric_value(metrics, f"flowers_http_requests_total{{{series}}}")


def _many_inputs() -> triton_pb.ModelInferRequest:
    message = triton_pb.ModelInferRequest(model_name="flowers")
    for index in range(10_000):
        message.inputs.add(name=f"input-{index}", datatype="BYTES", shape=[1])
    return message


def _huge_shape() -> triton_pb.ModelInferRequest:
    message = triton_pb.ModelInferRequest(model_name="flowers")
    message.inputs.add(name="image", datatype="BYTES", shape=list(range(1, 10_001)))
    return message


def _many_outputs() -> triton_pb.ModelInferRequest:
    message = _infer()
    for index in range(10_000):
        message.outputs.add(name=f"output-{index}")
    return message


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (triton_pb.ModelInferRequest(model_name="m" * 100_000), grpc.StatusCode.NOT_FOUND),
        (_infer(model_version="7" * 50_000), grpc.StatusCode.NOT_FOUND),
        (_many_inputs(), grpc.StatusCode.INVALID_ARGUMENT),
        (_huge_shape(), grpc.StatusCode.INVALID_ARGUMENT),
        (_many_outputs(), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=[
        "100 KB model name",
        "50 KB version",
        "10,000 inputs",
        "10,000 dimensions",
        "10,000 outputs",
    ],
)
def test_huge_names_and_repeated_fields_get_their_code_with_a_short_message(
    client: Grpc, message: triton_pb.ModelInferRequest, code: grpc.StatusCode
) -> None:
    got, details = client.call("ModelInfer", message.SerializeToString())
    assert got is code, details[:300]
    assert len(details) <= MAX_DETAILS
    _healthy(client)


def test_a_rest_answer_quotes_a_huge_model_name_short(client: Grpc) -> None:
    response = httpx.get(f"{client.server.base}/v2/models/{'m' * 50_000}", timeout=30)
    assert response.status_code == 404
    assert len(response.text) <= MAX_DETAILS and "50,002 characters" in response.json()["error"]


MESSAGES = [
    _infer().SerializeToString(),
    triton_pb.ModelMetadataRequest(name="flowers").SerializeToString(),
    triton_pb.ModelReadyRequest(name="flowers", version="1").SerializeToString(),
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid message of some method, then bit flips, a cut, and spliced bytes."""
    methods = ("ModelInfer", "ModelMetadata", "ModelReady")
    method, data = draw(st.sampled_from(list(zip(methods, MESSAGES, strict=True))))
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 8))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= 1 << draw(st.integers(0, 7))
    cut = draw(st.integers(0, len(data)))
    splice = draw(st.binary(max_size=64))
    return method, bytes(data[:cut]) + splice


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=mutated())
def test_mutated_and_truncated_messages_never_get_an_unknown_or_internal_status(
    client: Grpc, case: tuple[str, bytes]
) -> None:
    method, data = case
    code, details = client.call(method, data)
    assert code in REFUSALS, (code, details[:300])
    assert len(details) <= MAX_DETAILS


def test_the_server_serves_after_the_fuzzing(client: Grpc) -> None:
    _healthy(client)
    assert httpx.get(f"{client.server.base}/health/ready", timeout=10).status_code == 200
