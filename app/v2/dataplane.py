"""The flower model as the Open Inference Protocol sees it, served by /predict's data plane.

Protocol-neutral: the REST router and the gRPC servicer turn their messages into
:mod:`app.v2.codec` objects and call these functions.  Images go through
:meth:`Predictor.run` like /predict's (the same decode pool, batcher, queue limit, timeout,
per-file limits and metrics), and one version computes every output of a request.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from app.http.multipart import TooManyFiles, UploadLimits, UploadTooLarge
from app.http.service import Service
from app.inference.backend import InferenceBackend, ServingModel
from app.inference.predictor import Classified, Meter, StartDecoding, StartedImage
from app.store.versions import VersionNotFound
from app.v2.codec import (
    InferRequest,
    InferResponse,
    InvalidInferRequest,
    OutputTensor,
    RequestedOutput,
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


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: list[int]  # -1: any size


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: list[str]


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


@functools.cache
def server_metadata() -> ServerMetadata:
    try:
        version = importlib.metadata.version("flower-classifier")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return ServerMetadata(SERVER_NAME, version, list(EXTENSIONS))


def check_name(name: str) -> None:
    if name != MODEL_NAME:
        raise UnknownModel(f"unknown model {name!r}: this server serves {MODEL_NAME!r}")


def serving(backend: InferenceBackend, name: str, version: str | None) -> ServingModel:
    """The model that serves, if it is the one asked for: else UnknownModel, or NoModel (503)."""
    check_name(name)
    model = backend.require()
    if version and version != str(model.number):
        raise UnknownModel(
            f"version {version!r} of {MODEL_NAME!r} is not loaded (version {model.number} serves)"
        )
    return model


async def model_metadata(service: Service, name: str, version: str | None) -> ModelMetadata:
    model = serving(service.backend, name, version)
    versions = await asyncio.to_thread(service.store.versions)
    return ModelMetadata(
        name=MODEL_NAME,
        versions=[str(v.number) for v in versions],
        platform=model.engine,
        inputs=[TensorMetadata(INPUT, "BYTES", [-1])],
        outputs=[
            TensorMetadata(PROBABILITIES, "FP32", [-1, len(model.classes)]),
            TensorMetadata(LABEL, "BYTES", [-1]),
        ],
    )


async def infer(
    service: Service,
    name: str,
    version: str | None,
    read: Callable[[Meter], Awaitable[InferRequest]],
    declared_bytes: int | None,
) -> InferResponse:
    """Read the request (inside the data plane's admission, its body metered against the memory
    budget), classify its images, shape the outputs."""
    serving(service.backend, name, version)
    limits = UploadLimits.from_settings(service.settings)
    received: list[InferRequest] = []

    async def receive(start: StartDecoding, meter: Meter) -> list[StartedImage]:
        request = await read(meter)
        received.append(request)
        _check_outputs(request.outputs)
        images = _images(request, limits)
        return [start(f"{INPUT}[{index}]", data) for index, data in enumerate(images)]

    classified = await service.predictor.run(receive, declared_bytes)
    number = str(classified.version)
    if version and version != number:
        raise UnknownModel(
            f"version {version!r} of {MODEL_NAME!r} stopped serving during the request "
            f"(version {number} serves now)"
        )
    [request] = received
    return InferResponse(MODEL_NAME, number, request.id, _outputs(classified, request))


def _images(request: InferRequest, limits: UploadLimits) -> list[bytes]:
    names = [tensor.name for tensor in request.inputs]
    if names != [INPUT]:
        raise InvalidInferRequest(
            f"model {MODEL_NAME!r} takes one input, {INPUT!r} (BYTES, one image file per "
            f"element), not {names}"
        )
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES" or tensor.elements is None:
        raise InvalidInferRequest(
            f"input {INPUT!r} is BYTES (encoded image files), not {tensor.datatype}"
        )
    images = tensor.elements
    if tensor.shape != (len(images),):
        raise InvalidInferRequest(
            f"input {INPUT!r} has shape {list(tensor.shape)} but {len(images)} elements "
            f"(its shape is [number of images])"
        )
    if not images:
        raise InvalidInferRequest(f"input {INPUT!r} holds no image: send one or more")
    if len(images) > limits.max_files:
        raise TooManyFiles(f"at most {limits.max_files} images per request")
    for index, data in enumerate(images):
        if len(data) > limits.max_file_bytes:
            raise UploadTooLarge(
                f"{INPUT}[{index}]: the file is over the {limits.max_file_bytes:,}-byte limit"
            )
    return images


def _check_outputs(outputs: list[RequestedOutput] | None) -> None:
    names = [output.name for output in outputs or []]
    for output in outputs or []:
        if output.name not in _OUTPUTS:
            raise InvalidInferRequest(
                f"model {MODEL_NAME!r} has no output {output.name!r}: its outputs are "
                f"{', '.join(_OUTPUTS)}"
            )
        if names.count(output.name) > 1:
            raise InvalidInferRequest(f"output {output.name!r} is requested twice")
        if output.classification and output.name != PROBABILITIES:
            raise InvalidInferRequest(f"classification applies to {PROBABILITIES!r} only")


def _outputs(classified: Classified, request: InferRequest) -> list[OutputTensor]:
    wanted = request.outputs
    if wanted is None:
        wanted = [RequestedOutput(name) for name in _OUTPUTS]
    return [
        _output(
            classified, output, request.binary_output if output.binary is None else output.binary
        )
        for output in wanted
    ]


def _output(classified: Classified, wanted: RequestedOutput, binary: bool) -> OutputTensor:
    probabilities = classified.probabilities.astype(np.float32, copy=False)
    classes = classified.classes
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
