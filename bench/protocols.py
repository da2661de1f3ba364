"""Load for the Open Inference Protocol: V2 REST (binary tensor data) and gRPC requests carrying
the same photos as /predict's, and a closed-loop gRPC load generator like :func:`load.run`.

As for HTTP, requests are serialized before the clock starts and responses are not decoded
(only their status), so the client spends as little as possible of the CPUs it shares with the
server.  Each gRPC client has its own channel (its own connection), like each HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from grpc import aio

from app.v2.codec import serialize_bytes
from bench.load import LoadResult, Request

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def _photos(photos: list[Path], per_request: int, index: int) -> list[bytes]:
    return [
        photos[(index * per_request + k) % len(photos)].read_bytes() for k in range(per_request)
    ]


def v2_rest_requests(photos: list[Path], per_request: int, count: int) -> list[Request]:
    """``count`` V2 infer requests, binary as tritonclient.http sends them (no Content-Type)."""
    requests = []
    for index in range(count):
        data = serialize_bytes(_photos(photos, per_request, index))
        header = {
            "inputs": [
                {
                    "name": "image",
                    "shape": [per_request],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
        head = json.dumps(header).encode()
        headers = {"Inference-Header-Content-Length": str(len(head))}
        requests.append(Request("/v2/models/flowers/infer", headers, head + data))
    return requests


def v2_grpc_messages(photos: list[Path], per_request: int, count: int) -> list[bytes]:
    """``count`` serialized ModelInferRequest messages, images in raw_input_contents."""
    from app.v2.generated import grpc_predict_v2_pb2 as pb  # only where gRPC is used

    messages = []
    for index in range(count):
        message = pb.ModelInferRequest(model_name="flowers")
        message.inputs.add(name="image", datatype="BYTES", shape=[per_request])
        message.raw_input_contents.append(serialize_bytes(_photos(photos, per_request, index)))
        messages.append(message.SerializeToString())
    return messages


async def run_grpc(
    target: str, messages: list[bytes], concurrency: int, per_request: int, seconds: float
) -> LoadResult:
    """``concurrency`` closed-loop gRPC clients, each on its own channel."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        async with aio.insecure_channel(target) as channel:
            infer = channel.unary_unary(MODEL_INFER)  # bytes in, bytes out: nothing decoded
            sent = offset
            while time.perf_counter() < deadline:
                message = messages[sent % len(messages)]
                sent += concurrency
                started = time.perf_counter()
                try:
                    await infer(message, timeout=60)
                except aio.AioRpcError as error:
                    statuses[error.code().name] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = len(latencies)
    # errors are keyed by gRPC code; Retry-After is an HTTP matter: nothing to check here
    return LoadResult(
        concurrency, per_request, elapsed, ok, ok * per_request, dict(statuses), True, latencies
    )
