"""An app over a store of two tiny real versions (1 serves), and tritonclient's own encoder."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.api.conftest import FLOWERS, make_settings, running
from tests.support.modelfactory import publish_tiny

MAX_UPLOAD = 64 * 1024
MAX_FILES = 4


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
