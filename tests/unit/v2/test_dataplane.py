"""The V2 data plane on its own, over a fake backend: which model and version it serves, the
inputs it takes (within the upload limits), the outputs it shapes, one version for them all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app import imaging
from app.errors import TooManyFiles, UploadTooLarge
from app.inference.admission import Admission
from app.inference.backend import Inference
from app.inference.decoding import DecodeBudget
from app.inference.limits import UploadLimits
from app.inference.manager import NoModel
from app.inference.predictor import Predictor
from app.store.versions import ModelStore
from app.v2.dataplane import DataPlane, UnknownModel
from app.v2.types import (
    InferRequest,
    InferResponse,
    InputTensor,
    InvalidInferRequest,
    RequestedOutput,
)
from tests.support import imagefactory as make
from tests.support.fakes import FakeBackend, fake_version, serving_model

CLASSES = ["cats", "dogs", "owls"]
LIMITS = UploadLimits(max_file_bytes=50_000, max_files=3)


def _plane(tmp_path: Path, backend: FakeBackend) -> tuple[DataPlane, Predictor]:
    store = ModelStore(tmp_path / "store")
    fake_version(store, CLASSES)
    fake_version(store, CLASSES)
    predictor = Predictor(
        backend, Admission(10**7), DecodeBudget(10**9, 10**9), imaging.DEFAULT_MAX_PIXELS, 5
    )
    return DataPlane(backend, store, LIMITS), predictor


def _request(images: list[bytes], outputs: list[RequestedOutput] | None = None) -> InferRequest:
    tensor = InputTensor("image", "BYTES", (len(images),), images)
    return InferRequest("req-1", [tensor], outputs)


def _infer(
    plane: DataPlane, predictor: Predictor, request: InferRequest, version: str | None
) -> InferResponse:
    async def scenario() -> InferResponse:
        with predictor.admit(None) as admitted:
            return await plane.infer(request, admitted, version)

    return asyncio.run(scenario())


def test_the_model_is_checked_by_name_and_version(tmp_path: Path) -> None:
    plane, _ = _plane(tmp_path, FakeBackend(serving_model(2, CLASSES)))
    assert plane.check_model("flowers", None).number == 2
    assert plane.check_model("flowers", "2").number == 2
    with pytest.raises(UnknownModel, match="unknown model 'resnet'"):
        plane.check_model("resnet", None)
    with pytest.raises(UnknownModel, match=r"version '1' of 'flowers' is not loaded"):
        plane.check_model("flowers", "1")
    assert plane.model_ready("flowers", "2") and not plane.model_ready("flowers", "1")


def test_nothing_serves_yet_is_503_not_404(tmp_path: Path) -> None:
    plane, _ = _plane(tmp_path, FakeBackend(None))
    with pytest.raises(NoModel):
        plane.check_model("flowers", None)
    assert plane.model_ready("flowers", None) is False


def test_the_metadata_lists_every_version_and_the_tensors(tmp_path: Path) -> None:
    plane, _ = _plane(tmp_path, FakeBackend(serving_model(2, CLASSES)))
    metadata = asyncio.run(plane.model_metadata("flowers", None))
    assert metadata.versions == ["1", "2"] and metadata.platform == "fake"
    assert [(t.name, t.datatype, t.shape) for t in metadata.outputs] == [
        ("probabilities", "FP32", [-1, 3]),
        ("label", "BYTES", [-1]),
    ]


def test_every_output_by_default_from_one_version(tmp_path: Path) -> None:
    plane, predictor = _plane(tmp_path, FakeBackend(serving_model(2, CLASSES)))
    response = _infer(plane, predictor, _request([make.jpeg(seed=1), make.png(seed=2)]), None)
    assert (response.model_name, response.model_version, response.id) == ("flowers", "2", "req-1")
    probabilities, label = response.outputs
    assert probabilities.datatype == "FP32" and probabilities.data.shape == (2, 3)
    assert probabilities.data.dtype == np.float32
    assert label.datatype == "BYTES" and label.data.shape == (2,)


def test_the_classification_extension_gives_the_k_best(tmp_path: Path) -> None:
    plane, predictor = _plane(tmp_path, FakeBackend(serving_model(2, CLASSES)))
    wanted = [RequestedOutput("probabilities", binary=True, classification=2)]
    [top] = _infer(plane, predictor, _request([make.jpeg()], wanted), "2").outputs
    assert top.datatype == "BYTES" and top.binary and top.data.shape == (1, 2)
    score, index, label = top.data[0, 0].decode().split(":")
    assert CLASSES[int(index)] == label and float(score) >= 0


@pytest.mark.parametrize(
    ("request_", "refused", "message"),
    [
        (_request([b"x"] * 4), TooManyFiles, "at most 3 images"),
        (_request([b"x" * 50_001]), UploadTooLarge, r"image\[0\]: the file is over"),
        (_request([]), InvalidInferRequest, "holds no image"),
        (
            InferRequest("1", [InputTensor("image", "BYTES", (3,), [b"x"])]),
            InvalidInferRequest,
            r"has shape \[3\] but 1 elements",
        ),
        (
            InferRequest("1", [InputTensor("image", "FP32", (1,), None)]),
            InvalidInferRequest,
            "is BYTES",
        ),
        (
            InferRequest("1", [InputTensor("pixels", "BYTES", (1,), [b"x"])]),
            InvalidInferRequest,
            "takes one input, 'image'",
        ),
        (_request([b"x"], [RequestedOutput("logits")]), InvalidInferRequest, "no output 'logits'"),
        (
            _request([b"x"], [RequestedOutput("label"), RequestedOutput("label")]),
            InvalidInferRequest,
            "requested twice",
        ),
        (
            _request([b"x"], [RequestedOutput("label", classification=2)]),
            InvalidInferRequest,
            "classification applies to 'probabilities' only",
        ),
    ],
    ids=lambda v: "" if not isinstance(v, str) else v[:24],
)
def test_a_request_outside_the_model_or_the_limits_is_named(
    tmp_path: Path, request_: InferRequest, refused: type[Exception], message: str
) -> None:
    backend = FakeBackend(serving_model(2, CLASSES))
    plane, predictor = _plane(tmp_path, backend)
    with pytest.raises(refused, match=message):
        _infer(plane, predictor, request_, None)
    assert backend.calls == []  # refused before any image was classified


class SwappingBackend(FakeBackend):
    """Answers with version 3, though version 2 served when the request was checked."""

    async def infer(self, images: object, timeout_s: float) -> Inference:
        inference = await super().infer(images, timeout_s)  # type: ignore[arg-type]
        return Inference(3, inference.classes, inference.probabilities)


def test_a_version_asked_for_that_stopped_serving_during_the_request_is_not_found(
    tmp_path: Path,
) -> None:
    plane, predictor = _plane(tmp_path, SwappingBackend(serving_model(2, CLASSES)))
    with pytest.raises(UnknownModel, match="stopped serving during the request"):
        _infer(plane, predictor, _request([make.jpeg()]), "2")
