"""The Open Inference Protocol as tritonclient.http encodes and decodes it, for the tests."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import tritonclient.http as triton

MAX_UPLOAD = 64 * 1024
MAX_FILES = 4


def v2_request(
    images: list[bytes],
    binary: bool = True,
    outputs: list[triton.InferRequestedOutput] | None = None,
    **kwargs: Any,
) -> tuple[bytes, dict[str, str]]:
    """An infer body as tritonclient.http builds it, and its headers."""
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    data = images if binary else [base64.b64encode(image) for image in images]
    tensor.set_data_from_numpy(np.array(data, dtype=object), binary_data=binary)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=outputs, **kwargs
    )
    headers = (
        {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
    )
    return body, headers


def v2_result(response: Any) -> triton.InferResult:
    """tritonclient's reading of a 200 infer response."""
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    return triton.InferenceServerClient.parse_response_body(
        response.content, header_length=None if length is None else int(length)
    )
