"""The gRPC servicer's way of reading ModelInfer's one message: within the upload timeout,
and only as the method's protobuf (the rest is tested against the real server, tests/e2e).

Run in a child process: the test session holds tritonclient's copy of the protocol's messages,
and protobuf refuses a second copy of the same names in one process."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

SCENARIOS = r"""
import asyncio
from grpc import aio
from app.inference.limits import UploadLimits
from app.v2 import grpc_server
from app.v2.generated import grpc_predict_v2_pb2 as pb

class Context:
    def __init__(self, message, delay_s=0.0):
        self.message, self.delay_s = message, delay_s
    async def read(self):
        await asyncio.sleep(self.delay_s)
        return self.message

limits = UploadLimits(max_file_bytes=1024, max_files=1, idle_timeout_s=0.2)
servicer = grpc_server.InferenceServicer(None, None, None, limits)
for name, context in [
    ("message", Context(pb.ModelInferRequest(model_name="flowers"))),
    ("late", Context(pb.ModelInferRequest(), delay_s=5)),
    ("garbled", Context(grpc_server.Undecodable("Error parsing message"))),
    ("none", Context(aio.EOF)),
]:
    try:
        result = asyncio.run(servicer._read(context))
        print(f"{name}: read {result.model_name}")
    except Exception as error:
        print(f"{name}: {type(error).__name__} {error}")
"""


def test_the_one_message_is_read_within_the_upload_timeout_and_only_as_its_protobuf() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCENARIOS], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "message: read flowers",
        "late: UploadStalled the message did not arrive within 0.2s",
        "garbled: InvalidInferRequest the ModelInfer message cannot be read: Error parsing message",
        "none: InvalidInferRequest the call ended without a ModelInferRequest message",
    ]
