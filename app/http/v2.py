"""The Open Inference Protocol's REST routes (``/v2/...``), thin over ``protocols.inference``.

Every error of these routes is answered with the protocol's body, ``{"error": "..."}`` (the key
clients such as tritonclient read), with the status of the API's one error table.  Inference
bodies are read raw (tritonclient sends binary requests without a Content-Type), with the same
streaming limits as /predict.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from app.http import errors, multipart
from app.http.deps import ServiceDep
from app.http.service import Service
from app.inference.predictor import Meter
from app.v2 import codec, dataplane, types

HEADER_LENGTH: Final = "Inference-Header-Content-Length"
_BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
_PARSE_INLINE_BYTES: Final = 256 * 1024


class _V2Route(APIRoute):
    """A route whose errors are answered as ``{"error": "..."}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise  # the framework's own answers (405, 422), as on every route
            except Exception as error:
                status, reason, headers = errors.record(error, request.app.state.metrics)
                message = "internal server error" if reason == "internal" else str(error)
                return JSONResponse({"error": message}, status, headers or None)

        return handle


router = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=_V2Route)


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": types.V2Error, "description": errors.DESCRIPTIONS[status]}
        for status in statuses
    }


@router.get("", response_model=types.ServerMetadata)
async def server_metadata() -> types.ServerMetadata:
    """The server's name, version and protocol extensions."""
    return types.ServerMetadata(**vars(dataplane.server_metadata()))


@router.get("/health/live", response_model=types.ServerLive)
async def server_live() -> types.ServerLive:
    """200 while the process serves."""
    return types.ServerLive(live=True)


@router.get("/health/ready", response_model=types.ServerReady, responses=_responses(503))
async def server_ready(service: ServiceDep) -> types.ServerReady:
    """200 once a warmed-up model is loaded; 503 otherwise."""
    service.backend.require()
    return types.ServerReady(ready=True)


_MODEL = "/models/{model_name}"
_VERSION = "/models/{model_name}/versions/{model_version}"


@router.get(_MODEL, response_model=types.ModelMetadata, responses=_responses(404, 503))
async def model_metadata(service: ServiceDep, model_name: str) -> types.ModelMetadata:
    """The model's versions, engine, inputs and outputs."""
    return _metadata(await dataplane.model_metadata(service, model_name, None))


@router.get(_VERSION, response_model=types.ModelMetadata, responses=_responses(404, 503))
async def model_version_metadata(
    service: ServiceDep, model_name: str, model_version: str
) -> types.ModelMetadata:
    """A version's metadata; 404 unless it is the version that serves."""
    return _metadata(await dataplane.model_metadata(service, model_name, model_version))


def _metadata(metadata: dataplane.ModelMetadata) -> types.ModelMetadata:
    return types.ModelMetadata.model_validate(metadata, from_attributes=True)


@router.get(f"{_MODEL}/ready", response_model=types.ModelReady, responses=_responses(404, 503))
async def model_ready(service: ServiceDep, model_name: str) -> types.ModelReady:
    """200 when the model is loaded and warmed up."""
    dataplane.serving(service.backend, model_name, None)
    return types.ModelReady(name=dataplane.MODEL_NAME, ready=True)


@router.get(f"{_VERSION}/ready", response_model=types.ModelReady, responses=_responses(404, 503))
async def model_version_ready(
    service: ServiceDep, model_name: str, model_version: str
) -> types.ModelReady:
    """200 when this version serves; 404 when another one does."""
    dataplane.serving(service.backend, model_name, model_version)
    return types.ModelReady(name=dataplane.MODEL_NAME, ready=True)


def _infer_docs() -> dict[str, Any]:
    """The infer body: JSON, or (binary tensor data) a JSON header followed by the data."""
    header = {
        "name": HEADER_LENGTH,
        "in": "header",
        "required": False,
        "description": "The size of the JSON header when binary tensor data follows it",
        "schema": {"type": "integer", "minimum": 1},
    }
    json_body = {"schema": _inlined(types.InferenceRequest.model_json_schema())}
    return {
        "parameters": [header],
        "requestBody": {
            "required": True,
            "content": {"application/json": json_body, "application/octet-stream": _BINARY},
        },
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by the definitions themselves."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_INFER: Final[dict[str, Any]] = {
    "response_model": types.InferenceResponse,
    "responses": {
        200: {"content": {"application/octet-stream": _BINARY}},
        **_responses(400, 404, 408, 413, 415, 500, 503, 504),
    },
    "openapi_extra": _infer_docs(),
}


@router.post(f"{_MODEL}/infer", **_INFER)
async def model_infer(request: Request, service: ServiceDep, model_name: str) -> Response:
    """Classify images: input `image` (BYTES, one encoded image file per element)."""
    return await _infer(request, service, model_name, None)


@router.post(f"{_VERSION}/infer", **_INFER)
async def model_version_infer(
    request: Request, service: ServiceDep, model_name: str, model_version: str
) -> Response:
    """Classify images with this version; 404 unless it is the version that serves."""
    return await _infer(request, service, model_name, model_version)


async def _infer(
    request: Request, service: Service, model_name: str, model_version: str | None
) -> Response:
    settings = service.settings
    max_bytes = codec.max_request_bytes(settings.max_files_per_request, settings.max_upload_bytes)
    declared = multipart.declared_within(request.headers.get("content-length"), max_bytes)

    async def read(meter: Meter) -> codec.InferRequest:
        body = await multipart.receive_body(
            request.headers.get("content-length"),
            meter(request.stream()),
            max_bytes,
            settings.upload_timeout_s,
        )
        parse = functools.partial(
            codec.parse_rest_request, body, request.headers.get(HEADER_LENGTH)
        )
        # a large body (base64 JSON above all) takes milliseconds to parse: not on the event loop
        return await asyncio.to_thread(parse) if len(body) > _PARSE_INLINE_BYTES else parse()

    response = await dataplane.infer(service, model_name, model_version, read, declared)
    body, header_length = codec.encode_rest_response(response)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(header_length)},
    )
