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

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc import aio

from app import errors
from app.inference import memory
from app.inference.limits import UploadLimits
from app.inference.predictor import Predictor
from app.observability.metrics import Metrics
from app.v2 import grpc_codec
from app.v2.dataplane import DataPlane, server_metadata
from app.v2.generated import grpc_predict_v2_pb2 as pb
from app.v2.types import InvalidInferRequest

logger = logging.getLogger(__name__)

SERVICE: Final = "inference.GRPCInferenceService"
IDLE_TIMEOUT_S: Final = 60.0

# the refusal table's statuses as gRPC status codes
CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Request = TypeVar("Request", bound=Message)
Reply = TypeVar("Reply")
Context = aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int  # open connections at most: beyond it, new ones are closed
    handshake_timeout_s: float  # a connection's HTTP/2 preface and settings
    idle_timeout_s: float = IDLE_TIMEOUT_S  # a connection with no call in flight


async def start(
    dataplane: DataPlane,
    predictor: Predictor,
    metrics: Metrics,
    limits: UploadLimits,
    connections: ConnectionLimits,
    port: int,
) -> aio.Server:
    """Serve the protocol on ``port`` (all interfaces) until the returned server is stopped."""
    options = [
        ("grpc.max_receive_message_length", limits.max_grpc_message_bytes),
        ("grpc.max_allowed_incoming_connections", connections.max_connections),
        ("grpc.server_handshake_timeout_ms", int(connections.handshake_timeout_s * 1000)),
        ("grpc.max_connection_idle_ms", int(connections.idle_timeout_s * 1000)),
        # windows stay small until a message is read: no growth from bandwidth probes
        ("grpc.http2.bdp_probe", 0),
    ]
    server = aio.server(options=options)
    servicer = InferenceServicer(dataplane, predictor, metrics, limits)
    server.add_generic_rpc_handlers((handlers(servicer),))
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    logger.info("Open Inference Protocol gRPC server on port %d", port)
    return server


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not the method's protobuf message (mutated, cut short)."""

    error: str


def _tolerant(parse: Callable[[bytes], Message]) -> Callable[[bytes], Message | Undecodable]:
    """A deserializer that hands a bad message to the servicer instead of raising: gRPC itself
    would answer UNKNOWN, count nothing, and log a traceback."""

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return parse(data)
        except DecodeError as error:
            return Undecodable(str(error)[:200])

    return deserialize


def handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's methods, as the generated code registers them but for the deserializer,
    and ModelInfer: unary on the wire, served as a stream so that its message is read only
    once the upload budget holds room for it (gRPC reads a unary message whole first)."""
    unary = {
        "ServerLive": (servicer.ServerLive, pb.ServerLiveRequest),
        "ServerReady": (servicer.ServerReady, pb.ServerReadyRequest),
        "ModelReady": (servicer.ModelReady, pb.ModelReadyRequest),
        "ServerMetadata": (servicer.ServerMetadata, pb.ServerMetadataRequest),
        "ModelMetadata": (servicer.ModelMetadata, pb.ModelMetadataRequest),
    }
    methods = {
        name: grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=_tolerant(request.FromString),
            response_serializer=_serialize,
        )
        for name, (method, request) in unary.items()
    }
    methods["ModelInfer"] = grpc.stream_unary_rpc_method_handler(
        servicer.ModelInfer,
        request_deserializer=_tolerant(pb.ModelInferRequest.FromString),
        response_serializer=_serialize,
    )
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def _serialize(reply: Message) -> bytes:
    return reply.SerializeToString()


class InferenceServicer:
    """The service's six methods; registered by :func:`handlers`, not by the generated code."""

    def __init__(
        self, dataplane: DataPlane, predictor: Predictor, metrics: Metrics, limits: UploadLimits
    ) -> None:
        self.dataplane = dataplane
        self.predictor = predictor
        self.metrics = metrics
        self.limits = limits

    async def ServerLive(
        self, request: pb.ServerLiveRequest | Undecodable, context: Context
    ) -> pb.ServerLiveResponse:
        return await self._answer("ServerLive", request, context, self._live)

    async def ServerReady(
        self, request: pb.ServerReadyRequest | Undecodable, context: Context
    ) -> pb.ServerReadyResponse:
        return await self._answer("ServerReady", request, context, self._ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest | Undecodable, context: Context
    ) -> pb.ModelReadyResponse:
        return await self._answer("ModelReady", request, context, self._model_ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest | Undecodable, context: Context
    ) -> pb.ServerMetadataResponse:
        return await self._answer("ServerMetadata", request, context, self._server_metadata)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest | Undecodable, context: Context
    ) -> pb.ModelMetadataResponse:
        return await self._answer("ModelMetadata", request, context, self._metadata)

    async def ModelInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest | Undecodable], context: Context
    ) -> pb.ModelInferResponse:
        return await self._answer("ModelInfer", context, context, self._infer)

    async def _answer(
        self,
        method: str,
        request: Request | Undecodable | Context,
        context: Context,
        handle: Callable[[Any], Awaitable[Reply]],
    ) -> Reply:
        """The call's reply, or its refusal as a gRPC status; observed either way."""
        started = time.perf_counter()
        status = 200
        try:
            if isinstance(request, Undecodable):
                raise InvalidInferRequest(f"the {method} message cannot be read: {request.error}")
            return await handle(request)
        except Exception as error:
            # the failed call's message and images go now, not with its traceback
            traceback.clear_frames(error.__traceback__)
            refusal = errors.refuse(error, self.metrics)
            status = refusal.status
            code = CODES.get(status, grpc.StatusCode.INTERNAL)
            await context.abort(code, errors.message(error, refusal))
            raise  # abort raises; this line only tells type checkers so
        finally:
            self.metrics.observe(
                f"/{SERVICE}/{method}", "GRPC", status, time.perf_counter() - started
            )

    async def _live(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.backend.serving() is not None)

    async def _model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        ready = self.dataplane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    async def _server_metadata(
        self, request: pb.ServerMetadataRequest
    ) -> pb.ServerMetadataResponse:
        metadata = server_metadata()
        return pb.ServerMetadataResponse(
            name=metadata.name, version=metadata.version, extensions=metadata.extensions
        )

    async def _metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        metadata = await self.dataplane.model_metadata(request.name, request.version or None)
        return grpc_codec.model_metadata(metadata)

    async def _infer(self, context: Context) -> pb.ModelInferResponse:
        # The largest message a client may send is held against the upload budget while it is
        # read (waiting for room, not refused at once: honest messages are read in
        # milliseconds), and must arrive whole within the upload timeout: gRPC shows neither a
        # message's size nor its progress.  Once read, the request keeps what its message takes.
        largest = self.limits.max_grpc_message_bytes
        await self.predictor.wait_for_room(largest, _time_left(context, self.predictor.timeout_s))
        with self.predictor.admit(held_bytes=largest) as admitted:
            message = await self._read(context)
            size = message.ByteSize()
            admitted.keep(size)
            try:
                version = message.model_version or None
                self.dataplane.check_model(message.model_name, version)
                request = grpc_codec.infer_request(message)
                del message  # its images live on in the request alone
                response = await self.dataplane.infer(request, admitted, version)
            finally:
                if size >= memory.LARGE_BYTES:
                    memory.trim_soon()
        return grpc_codec.infer_response(response)

    async def _read(self, context: Context) -> pb.ModelInferRequest:
        """The call's one message, within the upload timeout (408 as DEADLINE_EXCEEDED)."""
        timeout_s = self.limits.idle_timeout_s
        try:
            message = await asyncio.wait_for(context.read(), timeout_s)
        except TimeoutError:
            late = f"the message did not arrive within {timeout_s:g}s"
            raise errors.UploadStalled(late) from None
        if isinstance(message, Undecodable):
            raise InvalidInferRequest(f"the ModelInfer message cannot be read: {message.error}")
        if not isinstance(message, pb.ModelInferRequest):  # the client sent no message
            raise InvalidInferRequest("the call ended without a ModelInferRequest message")
        return message


def _time_left(context: Context, limit_s: float) -> float:
    """What is left of the call's deadline (the client's, if it set one), at most ``limit_s``."""
    remaining = context.time_remaining()
    return limit_s if remaining is None else max(min(remaining, limit_s), 0.0)
