"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), thin over
:class:`~app.v2.dataplane.DataPlane` like the REST routes.

Started by the server's entry point beside uvicorn (``python -m app.serve``, as MLServer's and
KServe's servers start theirs), never from inside the HTTP app: so a host of the app that does
not serve gRPC (a Ray Ingress replica, a test client) never binds the port.  It runs in the same
event loop and shares the service's predictor, data plane and metrics.  Refusals follow the one
table of :mod:`app.errors`, as gRPC status codes.

Import this module only to serve gRPC (see :mod:`app.v2.grpc_codec`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from grpc import aio

from app import errors
from app.inference.limits import UploadLimits
from app.inference.predictor import Predictor
from app.observability.metrics import Metrics
from app.v2 import grpc_codec
from app.v2.dataplane import DataPlane, server_metadata
from app.v2.generated import grpc_predict_v2_pb2 as pb
from app.v2.generated import grpc_predict_v2_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE: Final = "inference.GRPCInferenceService"

# the refusal table's statuses as gRPC status codes
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


async def start(
    dataplane: DataPlane, predictor: Predictor, metrics: Metrics, limits: UploadLimits, port: int
) -> aio.Server:
    """Serve the protocol on ``port`` (all interfaces) until the returned server is stopped."""
    server = aio.server(
        options=[("grpc.max_receive_message_length", limits.max_grpc_message_bytes)]
    )
    servicer = InferenceServicer(dataplane, predictor, metrics)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    logger.info("Open Inference Protocol gRPC server on port %d", port)
    return server


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, predictor: Predictor, metrics: Metrics) -> None:
        self.dataplane = dataplane
        self.predictor = predictor
        self.metrics = metrics

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
        """The call's reply, or its refusal as a gRPC status; observed either way."""
        started = time.perf_counter()
        status = 200
        try:
            return await call()
        except Exception as error:
            refusal = errors.refuse(error, self.metrics)
            status = refusal.status
            code = CODES.get(status, grpc.StatusCode.INTERNAL)
            await context.abort(code, errors.message(error, refusal))
            raise  # abort raises; this line only tells type checkers so
        finally:
            self.metrics.observe(
                f"/{SERVICE}/{method}", "GRPC", status, time.perf_counter() - started
            )

    async def _live(self) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.backend.serving() is not None)

    async def _model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        ready = self.dataplane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    async def _server_metadata(self) -> pb.ServerMetadataResponse:
        metadata = server_metadata()
        return pb.ServerMetadataResponse(
            name=metadata.name, version=metadata.version, extensions=metadata.extensions
        )

    async def _metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        metadata = await self.dataplane.model_metadata(request.name, request.version or None)
        return grpc_codec.model_metadata(metadata)

    async def _infer(self, message: pb.ModelInferRequest) -> pb.ModelInferResponse:
        version = message.model_version or None
        self.dataplane.check_model(message.model_name, version)
        # gRPC has received the whole message: it counts against the upload budget as it is.
        with self.predictor.admit(message.ByteSize()) as admitted:
            request = grpc_codec.infer_request(message)
            response = await self.dataplane.infer(request, admitted, version)
        return grpc_codec.infer_response(response)
