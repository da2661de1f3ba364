"""Floods of the gRPC port against the real server, started with few file descriptors (1,024)
so that a flood can reach the limit: idle TCP connections that never send a byte.  The gRPC
port has its own connection cap, so HTTP (its probes and /predict) keeps every descriptor it
needs, and idle gRPC connections are closed after the handshake deadline."""

from __future__ import annotations

import contextlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx2 as httpx
import pytest
import tritonclient.grpc.service_pb2 as triton_pb

from app.store.versions import ModelStore
from bench.server import free_port
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

OPEN_FILES = 1024  # the server's limit (prlimit), soft and hard
IDLE_CONNECTIONS = 1500  # more than it could hold open
GRPC_CAP = 64
HANDSHAKE_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    store = ModelStore(tmp_path_factory.mktemp("grpc-floods") / "store")
    publish_tiny(store, ["a", "b", "c"])
    grpc_port = free_port()
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_GRPC_PORT": str(grpc_port),
        "FLOWERS_GRPC_MAX_CONNECTIONS": str(GRPC_CAP),
        "FLOWERS_MAX_CONNECTIONS": "512",
        "FLOWERS_HEADER_TIMEOUT_S": str(HANDSHAKE_S),
        "FLOWERS_ENGINE": "tensorflow",
        "FLOWERS_LOG_LEVEL": "warning",
    }
    limited = ["prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", sys.executable]
    command = [*limited, "-m", "app.serve", "--host", "127.0.0.1"]
    with running_server(env, command=command) as running:
        yield running, grpc_port


def _infer(port: int) -> grpc.StatusCode:
    photo = make.jpeg(seed=6)
    message = triton_pb.ModelInferRequest(model_name="flowers")
    message.inputs.add(name="image", datatype="BYTES", shape=[1])
    message.raw_input_contents.append(len(photo).to_bytes(4, "little") + photo)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(message.SerializeToString(), timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_idle_grpc_connections_never_take_the_descriptors_http_needs(
    server: tuple[Server, int],
) -> None:
    running, grpc_port = server
    idle: list[socket.socket] = []
    stop = threading.Event()
    http: list[tuple[str, int, float]] = []

    def probe() -> None:
        photo = {"file": ("rose.jpg", make.jpeg(seed=7), "image/jpeg")}
        with httpx.Client(base_url=running.base, timeout=30) as client:
            while not stop.is_set():
                for path in ("/health/live", "/predict"):
                    started = time.monotonic()
                    try:
                        kwargs = {"files": photo} if path == "/predict" else {}
                        method = client.post if path == "/predict" else client.get
                        status = method(path, **kwargs).status_code
                    except httpx.TransportError:
                        status = 0
                    http.append((path, status, time.monotonic() - started))
                time.sleep(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        for _ in range(IDLE_CONNECTIONS):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", grpc_port), timeout=5))
        peak_files = _open_files(running.process.pid)
        time.sleep(HANDSHAKE_S + 2)  # the handshake deadline closes the idle ones
        after = _infer(grpc_port)
        files_after = _open_files(running.process.pid)
    finally:
        stop.set()
        prober.join(30)
        for sock in idle:
            sock.close()
    latencies = [seconds for _, _, seconds in http]
    print(
        f"\n{len(idle)} idle connections to the gRPC port (cap {GRPC_CAP}, file limit "
        f"{OPEN_FILES}): server files at the peak {peak_files}, after the handshake deadline "
        f"{files_after}; HTTP meanwhile: {len(http)} requests, statuses "
        f"{sorted({s for _, s, _ in http})}, median {statistics.median(latencies) * 1000:.0f} "
        f"ms, max {max(latencies) * 1000:.0f} ms; gRPC ModelInfer afterwards: {after.name}"
    )
    assert {status for _, status, _ in http} == {200}
    assert peak_files < OPEN_FILES - 100
    assert after is grpc.StatusCode.OK
