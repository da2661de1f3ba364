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


OVERSIZED_BYTES = 150 * 1024 * 1024  # just under the largest message (16 images of 10 MiB)
CONCURRENT_OVERSIZED = 8
BUDGET_MIB = 256  # FLOWERS_MAX_INFLIGHT_BYTES, the default


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _oversized_round(port: int, message: bytes) -> list[grpc.StatusCode]:
    """CONCURRENT_OVERSIZED calls at once, each sending ``message`` whole."""
    codes: list[grpc.StatusCode] = []
    options = [("grpc.max_send_message_length", 2 * len(message))]

    def send() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            try:
                call(message, timeout=120)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())

    senders = [threading.Thread(target=send) for _ in range(CONCURRENT_OVERSIZED)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(180)
    return codes


def test_concurrent_oversized_messages_stay_within_the_upload_budget(
    server: tuple[Server, int],
) -> None:
    running, grpc_port = server
    pid = running.process.pid
    # a valid ModelInfer whose one BYTES element is 150 MiB of noise: read whole, then refused
    message = triton_pb.ModelInferRequest(model_name="flowers")
    message.inputs.add(name="image", datatype="BYTES", shape=[1])
    element = OVERSIZED_BYTES.to_bytes(4, "little") + b"\0" * OVERSIZED_BYTES
    message.raw_input_contents.append(element)
    serialized = message.SerializeToString()
    del message
    baseline = _rss_mib(pid)
    peak = baseline
    sampling = threading.Event()
    honest: list[grpc.StatusCode] = []
    honest_s: list[float] = []

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, _rss_mib(pid))
            time.sleep(0.02)

    def infer_honestly() -> None:
        while not sampling.is_set():
            started = time.monotonic()
            honest.append(_infer(grpc_port))
            honest_s.append(time.monotonic() - started)
            time.sleep(0.2)

    watchers = [threading.Thread(target=sample), threading.Thread(target=infer_honestly)]
    for watcher in watchers:
        watcher.start()
    try:
        first = _oversized_round(grpc_port, serialized)
        after_first = _rss_mib(pid)
        second = _oversized_round(grpc_port, serialized)
        time.sleep(1)
        after_second = _rss_mib(pid)
    finally:
        sampling.set()
        for watcher in watchers:
            watcher.join(30)
    print(
        f"\n2 rounds of {CONCURRENT_OVERSIZED} concurrent {OVERSIZED_BYTES >> 20} MiB ModelInfer "
        f"messages (budget {BUDGET_MIB} MiB): server RSS {baseline:.0f} MiB before, peak "
        f"{peak:.0f} MiB (+{peak - baseline:.0f}), after round 1 {after_first:.0f} MiB, after "
        f"round 2 {after_second:.0f} MiB; answers {sorted({c.name for c in first + second})}; "
        f"honest ModelInfer meanwhile: {len(honest)} calls, {sorted({c.name for c in honest})}, "
        f"median {statistics.median(honest_s) * 1000:.0f} ms, max {max(honest_s) * 1000:.0f} ms"
    )
    # One message is read at a time (the budget holds the largest once); gRPC's bytes, the
    # parsed message and the codec's copy hold it about three times over while it is read.
    assert peak - baseline < 4 * BUDGET_MIB
    assert after_second - baseline < BUDGET_MIB / 2  # given back
    assert honest and set(honest) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    assert grpc.StatusCode.OK in honest
