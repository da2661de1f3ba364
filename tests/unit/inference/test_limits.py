"""Every body limit holds a request of every image at its largest, in each encoding, and not
much more (a limit far above that would let a client make the server read what it refuses)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tritonclient.grpc.service_pb2 as triton_pb
import tritonclient.http as triton

from app.config import MULTIPART_OVERHEAD_BYTES, Settings
from app.inference.limits import V2_OVERHEAD_BYTES, UploadLimits, size_text
from tests.support.multipartbody import multipart_body

LIMITS = UploadLimits(max_file_bytes=300_000, max_files=4)
LARGEST = [bytes([index]) * LIMITS.max_file_bytes for index in range(LIMITS.max_files)]


def test_the_limits_come_from_the_settings() -> None:
    settings = Settings(max_upload_bytes=5000, max_files_per_request=3, upload_timeout_s=2.5)
    assert UploadLimits.from_settings(settings) == UploadLimits(5000, 3, 2.5)


def test_a_multipart_body_of_every_file_at_its_limit_fits() -> None:
    body = multipart_body([("files", f"{i}.jpg", data) for i, data in enumerate(LARGEST)])
    assert len(body) <= LIMITS.max_body_bytes
    assert LIMITS.max_body_bytes == 4 * 300_000 + MULTIPART_OVERHEAD_BYTES


def test_a_v2_json_body_of_every_image_at_its_limit_in_base64_fits() -> None:
    data = [base64.b64encode(image).decode() for image in LARGEST]
    document = {"inputs": [{"name": "image", "shape": [4], "datatype": "BYTES", "data": data}]}
    size = len(json.dumps(document).encode())
    assert size <= LIMITS.max_v2_rest_bytes < size + V2_OVERHEAD_BYTES + 64


def test_a_v2_binary_body_of_every_image_at_its_limit_fits() -> None:
    tensor = triton.InferInput("image", [4], "BYTES")
    tensor.set_data_from_numpy(np.array(LARGEST, dtype=object), binary_data=True)
    body, _ = triton.InferenceServerClient.generate_request_body([tensor])
    assert len(body) <= LIMITS.max_v2_rest_bytes


def test_a_grpc_message_of_every_image_at_its_limit_fits() -> None:
    # tritonclient's copy of the protocol's messages: the same wire format as ours
    message = triton_pb.ModelInferRequest(model_name="flowers", id="request-1")
    message.inputs.add(name="image", datatype="BYTES", shape=[4])
    raw = b"".join(len(image).to_bytes(4, "little") + image for image in LARGEST)
    message.raw_input_contents.append(raw)
    size = message.ByteSize()
    assert size <= LIMITS.max_grpc_message_bytes < size + V2_OVERHEAD_BYTES


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (10 * 2**20, "10 MiB (10,485,760 bytes)"),
        (65_536, "64 KiB (65,536 bytes)"),
        (1_500_000, "1.4 MiB (1,500,000 bytes)"),
        (3 * 2**30, "3 GiB (3,221,225,472 bytes)"),
        (512, "512 bytes"),
    ],
)
def test_a_size_reads_as_people_read_it_and_stays_exact(count: int, text: str) -> None:
    assert size_text(count) == text
