"""Print the functions of app/ that one real request calls, in the order they are first called,
for each protocol: /predict (multipart), the Open Inference Protocol over REST, and over gRPC.

    .venv/bin/python scripts/request_path.py            # the three, each in a process of its own
    .venv/bin/python scripts/request_path.py grpc       # one of predict, v2-rest, grpc

The service runs in-process over a store of one tiny real Keras model (tests/support), with the
TensorFlow engine; a profiler records every call into app/ while the request is served, in every
thread (the event loop, the decode pool, the inference thread).  Nothing of the app is changed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
APP = str(REPO / "app")
PROTOCOLS = ("predict", "v2-rest", "grpc")
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


class Recorder:
    """Every first call of an app/ function while ``on``, with the thread it ran in."""

    def __init__(self) -> None:
        self.on = False
        self.seen: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.on or event != "call":
            return
        path, name = frame.f_code.co_filename, frame.f_code.co_qualname
        if not path.startswith(APP) or "/generated/" in path or "<" in name:
            return  # outside app/, generated code, comprehensions and lambdas
        where = (str(Path(path).relative_to(REPO)), name)
        with self.lock:
            if where not in self.seen:
                self.seen.add(where)
                self.calls.append((_thread_kind(threading.current_thread().name), *where))

    def install(self) -> None:
        sys.setprofile(self)
        threading.setprofile(self)

    def print(self, title: str) -> None:
        print(f"== {title}: {len(self.calls)} functions of app/, in the order first called")
        for thread, path, function in self.calls:
            print(f"  {path}:{function}" + ("" if thread == "event loop" else f"  [{thread}]"))


def _thread_kind(name: str) -> str:
    """The thread a call ran in: the event loop (unmarked), the decode pool, the inference one."""
    for prefix, kind in (("decode", "decode pool"), ("inference", "inference thread")):
        if name.startswith(prefix):
            return kind
    return "event loop"


def _settings(store: Path) -> Any:
    from app.config import Settings

    return Settings(model_store=store, engine="tensorflow", max_batch_delay_ms=0)


def _store() -> Path:
    from app.store.versions import ModelStore
    from tests.support.modelfactory import publish_tiny

    store = ModelStore(Path(tempfile.mkdtemp(prefix="request-path-")) / "store")
    publish_tiny(store, CLASSES)
    return store.root


def _photo() -> bytes:
    from tests.support import imagefactory

    return imagefactory.jpeg(seed=7, size=(320, 240))


def trace_http(protocol: str, recorder: Recorder) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    store, photo = _store(), _photo()
    with TestClient(create_app(_settings(store))) as client:
        while client.get("/health/ready").status_code != 200:
            pass
        recorder.on = True
        if protocol == "predict":
            response = client.post("/predict", files={"file": ("rose.jpg", photo, "image/jpeg")})
        else:
            response = client.post("/v2/models/flowers/infer", **_v2_rest_body(photo))
        recorder.on = False
    assert response.status_code == 200, response.text
    print(f"{protocol}: HTTP {response.status_code}, {len(response.content)} bytes")


def _v2_rest_body(photo: bytes) -> dict[str, Any]:
    header = (
        '{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES",'
        f'"parameters":{{"binary_data_size":{len(photo) + 4}}}}}]}}'
    ).encode()
    body = header + len(photo).to_bytes(4, "little") + photo
    return {"content": body, "headers": {"Inference-Header-Content-Length": str(len(header))}}


def trace_grpc(recorder: Recorder) -> None:
    import grpc

    from app.main import build_local_service
    from app.observability.metrics import Metrics
    from app.v2 import grpc_server
    from app.v2.generated import grpc_predict_v2_pb2 as pb
    from app.v2.generated import grpc_predict_v2_pb2_grpc as pb_grpc
    from bench.server import free_port

    settings, photo, port = _settings(_store()), _photo(), free_port()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="event-loop", daemon=True).start()
    service = build_local_service(settings, Metrics())

    async def start() -> Any:
        await service.start()
        await service.backend.load()
        parts = (service.dataplane, service.predictor, service.metrics, service.limits)
        connections = grpc_server.ConnectionLimits(16, 5.0)
        return await grpc_server.start(*parts, connections, port=port)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(120)
    message = pb.ModelInferRequest(model_name="flowers", raw_input_contents=[
        len(photo).to_bytes(4, "little") + photo
    ])  # fmt: skip
    message.inputs.add(name="image", datatype="BYTES", shape=[1])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        recorder.on = True
        reply = stub.ModelInfer(message, timeout=60)
        recorder.on = False
    asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
    asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
    print(f"grpc: OK, outputs {[output.name for output in reply.outputs]}")


def main(argv: list[str]) -> int:
    if not argv:
        for protocol in PROTOCOLS:
            subprocess.run([sys.executable, __file__, protocol], check=True)
        return 0
    [protocol] = argv
    recorder = Recorder()
    recorder.install()
    if protocol == "grpc":
        trace_grpc(recorder)
    else:
        trace_http(protocol, recorder)
    recorder.print(protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
