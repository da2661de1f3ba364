"""The Open Inference Protocol over gRPC (``dataplane.GRPCInferenceService``), thin over
:mod:`app.v2.dataplane` like the REST routes; served by ``grpc.aio`` in the app's event
loop, so it shares the app's backend (batcher and models) and metrics.

Outputs always travel in ``raw_output_contents`` (tritonclient reads numeric outputs only
there).  Errors are the API's error table, mapped to gRPC status codes.

Import this module only to serve gRPC: its generated messages (package ``inference``) go into
protobuf's default descriptor pool, where another copy of the protocol (tritonclient's, in a
test process) would clash with them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from grpc import aio

from app.config import Settings
from app.http import errors
from app.http.service import Service
from app.inference.predictor import Meter
from app.v2 import codec, dataplane
from app.v2.generated import grpc_predict_v2_pb2 as pb
from app.v2.generated import grpc_predict_v2_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE: Final = "dataplane.GRPCInferenceService"
_MESSAGE_OVERHEAD: Final = 64 * 1024

# the API's HTTP statuses as gRPC status codes
CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Reply = TypeVar("Reply")
Context = aio.ServicerContext[Any, Any]


def max_message_bytes(settings: Settings) -> int:
    """The largest request accepted: every image at its size limit, plus the message itself."""
    per_image = settings.max_upload_bytes + 4  # BYTES elements carry a 4-byte length
    return settings.max_files_per_request * per_image + _MESSAGE_OVERHEAD


async def start(service: Service, port: int) -> aio.Server:
    """Serve the protocol on ``port`` (all interfaces) until the returned server is stopped."""
    limit = max_message_bytes(service.settings)
    server = aio.server(options=[("grpc.max_receive_message_length", limit)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    logger.info("Open Inference Protocol gRPC server on port %d", port)
    return server


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return await self._answer("ServerLive", context, self._live)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return await self._answer("ServerReady", context, self._ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        return await self._answer("ModelReady", context, lambda: self._model_ready(request))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return await self._answer("ServerMetadata", context, self._server_metadata)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        return await self._answer("ModelMetadata", context, lambda: self._metadata(request))

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        return await self._answer("ModelInfer", context, lambda: self._infer(request))

    async def _answer(
        self, method: str, context: Context, call: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """The call's reply, or its error as a gRPC status; metrics either way."""
        started = time.perf_counter()
        status = 200
        try:
            return await call()
        except Exception as error:
            status, reason, _ = errors.record(error, self.service.metrics)
            message = "internal server error" if reason == "internal" else str(error)
            await context.abort(CODES.get(status, grpc.StatusCode.INTERNAL), message)
            raise  # abort raises; this line only tells type checkers so
        finally:
            labels = {"route": f"/{SERVICE}/{method}", "method": "GRPC", "status": str(status)}
            self.service.metrics.requests.labels(**labels).inc()
            self.service.metrics.latency.labels(**labels).observe(time.perf_counter() - started)

    async def _live(self) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.service.backend.serving() is not None)

    async def _model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        dataplane.check_name(request.name)
        current = self.service.backend.serving()
        ready = current is not None and request.version in ("", str(current.number))
        return pb.ModelReadyResponse(ready=ready)

    async def _server_metadata(self) -> pb.ServerMetadataResponse:
        metadata = dataplane.server_metadata()
        return pb.ServerMetadataResponse(
            name=metadata.name, version=metadata.version, extensions=metadata.extensions
        )

    async def _metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        metadata = await dataplane.model_metadata(
            self.service, request.name, request.version or None
        )
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata.name,
            versions=metadata.versions,
            platform=metadata.platform,
            inputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.inputs
            ],
            outputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.outputs
            ],
        )

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        async def read(meter: Meter) -> codec.InferRequest:
            return infer_request(request)  # gRPC has received the whole message already

        # The message is in memory for the whole call: it counts against the upload budget.
        response = await dataplane.infer(
            self.service,
            request.model_name,
            request.model_version or None,
            read,
            request.ByteSize(),
        )
        return infer_response(response)


def infer_request(message: pb.ModelInferRequest) -> codec.InferRequest:
    """The protocol-neutral request: inputs from raw_input_contents, or from their contents."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise codec.InvalidInferRequest(
            f"raw_input_contents holds {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs = [
        _input(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)
    ]
    outputs = [
        codec.RequestedOutput(output.name, classification=_classification(output))
        for output in message.outputs
    ]
    return codec.InferRequest(message.id, inputs, outputs or None)


def _input(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> codec.InputTensor:
    elements = None
    if tensor.datatype == "BYTES":
        if raw is not None:
            elements = codec.deserialize_bytes(raw, f"input {tensor.name!r}")
        else:
            elements = list(tensor.contents.bytes_contents)
    return codec.InputTensor(tensor.name, tensor.datatype, tuple(tensor.shape), elements)


def _classification(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> int | None:
    if "classification" not in output.parameters:
        return None
    parameter = output.parameters["classification"]
    kind = parameter.WhichOneof("parameter_choice")
    k = parameter.int64_param if kind == "int64_param" else parameter.uint64_param
    if kind not in ("int64_param", "uint64_param") or k < 1:
        raise codec.InvalidInferRequest(
            f"output {output.name!r}: classification must be a class count of at least 1"
        )
    return k


def infer_response(response: codec.InferResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    for output in response.outputs:
        message.outputs.add(name=output.name, datatype=output.datatype, shape=output.data.shape)
        message.raw_output_contents.append(codec.tensor_bytes(output))
    return message
