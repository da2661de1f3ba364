"""The flower model as the Open Inference Protocol sees it: its name, metadata and readiness,
and inference through the same predictor as /predict (the same decode pool, batcher, queue limit,
timeout, per-file limits and metrics).

Protocol-neutral, after KServe's and MLServer's ``DataPlane``: the REST routes
(:mod:`app.http.v2`) and the gRPC servicer (:mod:`app.v2.grpc_server`) decode their messages
into :mod:`app.v2.types`, call a :class:`DataPlane`, and encode what it returns.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
from typing import Final

import numpy as np

from app.errors import SHOWN_CHARS, TooManyFiles, UploadTooLarge, shown
from app.inference.backend import Inference, InferenceBackend
from app.inference.limits import UploadLimits, size_text
from app.inference.manager import ServingModel
from app.inference.predictor import Admitted
from app.store.versions import ModelStore, VersionNotFound
from app.v2.types import (
    InferRequest,
    InferResponse,
    InvalidInferRequest,
    ModelMetadata,
    OutputTensor,
    RequestedOutput,
    ServerMetadata,
    TensorMetadata,
)

MODEL_NAME: Final = "flowers"
SERVER_NAME: Final = "flower-classifier"
EXTENSIONS: Final = ("binary_tensor_data", "classification")
INPUT: Final = "image"
PROBABILITIES: Final = "probabilities"
LABEL: Final = "label"
_OUTPUTS: Final = (PROBABILITIES, LABEL)


class UnknownModel(VersionNotFound):
    """A model this server does not serve, or a version that is not the one serving (404)."""


@functools.cache
def server_metadata() -> ServerMetadata:
    try:
        version = importlib.metadata.version("flower-classifier")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return ServerMetadata(name=SERVER_NAME, version=version, extensions=list(EXTENSIONS))


def check_name(name: str) -> None:
    if name != MODEL_NAME:
        raise UnknownModel(f"unknown model {shown(name)}: this server serves {MODEL_NAME!r}")


class DataPlane:
    def __init__(self, backend: InferenceBackend, store: ModelStore, limits: UploadLimits) -> None:
        self.backend = backend
        self.store = store
        self.limits = limits

    def check_model(self, name: str, version: str | None) -> ServingModel:
        """The serving model if it is the one asked for: else UnknownModel (404), or NoModel
        (503) while none serves."""
        check_name(name)
        model = self.backend.ready_model()
        if version and version != str(model.number):
            raise UnknownModel(
                f"version {shown(version)} of {MODEL_NAME!r} is not loaded "
                f"(version {model.number} serves)"
            )
        return model

    def model_ready(self, name: str, version: str | None) -> bool:
        """Whether the model (at this version, if given) serves; UnknownModel for another."""
        check_name(name)
        current = self.backend.serving()
        return current is not None and version in (None, str(current.number))

    async def model_metadata(self, name: str, version: str | None) -> ModelMetadata:
        model = self.check_model(name, version)
        versions = await asyncio.to_thread(self.store.versions)
        return ModelMetadata(
            name=MODEL_NAME,
            versions=[str(v.number) for v in versions],
            platform=model.engine,
            inputs=[TensorMetadata(name=INPUT, datatype="BYTES", shape=[-1])],
            outputs=[
                TensorMetadata(name=PROBABILITIES, datatype="FP32", shape=[-1, len(model.classes)]),
                TensorMetadata(name=LABEL, datatype="BYTES", shape=[-1]),
            ],
        )

    async def infer(
        self, request: InferRequest, admitted: Admitted, version: str | None
    ) -> InferResponse:
        """Classify the request's images (decoded as the admitted request's), shape the
        outputs it asks for; every output from one version."""
        _check_outputs(request.outputs)
        images = [
            admitted.start_decoding(f"{INPUT}[{index}]", data)
            for index, data in enumerate(_images(request, self.limits))
        ]
        inference = await admitted.classify(images)
        number = str(inference.version)
        if version and version != number:
            raise UnknownModel(
                f"version {shown(version)} of {MODEL_NAME!r} stopped serving during the request "
                f"(version {number} serves now)"
            )
        return InferResponse(MODEL_NAME, number, request.id, _outputs(inference, request))


def _images(request: InferRequest, limits: UploadLimits) -> list[bytes]:
    names = [tensor.name for tensor in request.inputs]
    if names != [INPUT]:
        raise InvalidInferRequest(
            f"model {MODEL_NAME!r} takes one input, {INPUT!r} (BYTES, one image file per "
            f"element), not {shown(names)}"
        )
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES" or tensor.elements is None:
        raise InvalidInferRequest(
            f"input {INPUT!r} is BYTES (encoded image files), not {tensor.datatype[:SHOWN_CHARS]}"
        )
    images = tensor.elements
    if tensor.shape != (len(images),):
        raise InvalidInferRequest(
            f"input {INPUT!r} has shape {shown(list(tensor.shape))} but {len(images)} elements "
            f"(its shape is [number of images])"
        )
    if not images:
        raise InvalidInferRequest(f"input {INPUT!r} holds no image: send one or more")
    if len(images) > limits.max_files:
        raise TooManyFiles(f"at most {limits.max_files} images per request")
    for index, data in enumerate(images):
        if len(data) > limits.max_file_bytes:
            raise UploadTooLarge(
                f"{INPUT}[{index}]: the file is over the {size_text(limits.max_file_bytes)} limit"
            )
    return images


def _check_outputs(outputs: list[RequestedOutput] | None) -> None:
    names = [output.name for output in outputs or []]
    for output in outputs or []:
        if output.name not in _OUTPUTS:
            raise InvalidInferRequest(
                f"model {MODEL_NAME!r} has no output {shown(output.name)}: its outputs are "
                f"{', '.join(_OUTPUTS)}"
            )
        if names.count(output.name) > 1:
            raise InvalidInferRequest(f"output {shown(output.name)} is requested twice")
        if output.classification and output.name != PROBABILITIES:
            raise InvalidInferRequest(f"classification applies to {PROBABILITIES!r} only")


def _outputs(inference: Inference, request: InferRequest) -> list[OutputTensor]:
    wanted = request.outputs
    if wanted is None:
        wanted = [RequestedOutput(name) for name in _OUTPUTS]
    return [
        _output(
            inference, output, request.binary_output if output.binary is None else output.binary
        )
        for output in wanted
    ]


def _output(inference: Inference, wanted: RequestedOutput, binary: bool) -> OutputTensor:
    probabilities = inference.probabilities.astype(np.float32, copy=False)
    classes = inference.classes
    if wanted.name == LABEL:
        best = probabilities.argmax(axis=1)
        labels = np.array([classes[i].encode() for i in best], dtype=object)
        return OutputTensor(LABEL, "BYTES", labels, binary)
    if wanted.classification:
        return OutputTensor(
            PROBABILITIES,
            "BYTES",
            top_classes(probabilities, classes, wanted.classification),
            binary,
        )
    return OutputTensor(PROBABILITIES, "FP32", probabilities, binary)


def top_classes(probabilities: np.ndarray, classes: list[str], k: int) -> np.ndarray:
    """The classification extension: each row's k best as b"score:index:label", best first."""
    k = min(k, len(classes))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top = np.empty(order.shape, dtype=object)
    for row, indices in enumerate(order):
        for column, index in enumerate(indices):
            top[row, column] = f"{probabilities[row, index]}:{index}:{classes[index]}".encode()
    return top
