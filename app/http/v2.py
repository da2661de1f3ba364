"""The Open Inference Protocol's REST routes (``/v2/...``), thin over the V2 data plane.

Every refusal of these routes is answered with the protocol's body, ``{"error": "..."}`` (their
route class, :class:`~app.http.errors.V2Route`), with the status of the one refusal table.
Inference bodies are read raw (tritonclient sends binary requests without a Content-Type), with
the same streaming limits as /predict.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from app.http import bodies
from app.http.deps import BackendDep, DataPlaneDep, LimitsDep, PredictorDep
from app.http.errors import DESCRIPTIONS, V2Route
from app.inference.limits import UploadLimits
from app.inference.predictor import Predictor
from app.v2 import codec, dataplane, openapi, types
from app.v2.dataplane import DataPlane

HEADER_LENGTH: Final = "Inference-Header-Content-Length"
_BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
_PARSE_INLINE_BYTES: Final = 256 * 1024

router = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=V2Route)


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": types.V2Error, "description": DESCRIPTIONS[status]} for status in statuses
    }


@router.get("", response_model=types.ServerMetadata)
async def server_metadata() -> types.ServerMetadata:
    """The server's name, version and protocol extensions."""
    return dataplane.server_metadata()


@router.get("/health/live", response_model=types.ServerLive)
async def server_live() -> types.ServerLive:
    """200 while the process serves."""
    return types.ServerLive(live=True)


@router.get("/health/ready", response_model=types.ServerReady, responses=_responses(503))
async def server_ready(backend: BackendDep) -> types.ServerReady:
    """200 once a warmed-up model is loaded; 503 otherwise."""
    backend.ready_model()
    return types.ServerReady(ready=True)


_MODEL = "/models/{model_name}"
_VERSION = "/models/{model_name}/versions/{model_version}"


@router.get(_MODEL, response_model=types.ModelMetadata, responses=_responses(404, 503))
async def model_metadata(plane: DataPlaneDep, model_name: str) -> types.ModelMetadata:
    """The model's versions, engine, inputs and outputs."""
    return await plane.model_metadata(model_name, None)


@router.get(_VERSION, response_model=types.ModelMetadata, responses=_responses(404, 503))
async def model_version_metadata(
    plane: DataPlaneDep, model_name: str, model_version: str
) -> types.ModelMetadata:
    """A version's metadata; 404 unless it is the version that serves."""
    return await plane.model_metadata(model_name, model_version)


@router.get(f"{_MODEL}/ready", response_model=types.ModelReady, responses=_responses(404, 503))
async def model_ready(plane: DataPlaneDep, model_name: str) -> types.ModelReady:
    """200 when the model is loaded and warmed up."""
    plane.check_model(model_name, None)
    return types.ModelReady(name=dataplane.MODEL_NAME, ready=True)


@router.get(f"{_VERSION}/ready", response_model=types.ModelReady, responses=_responses(404, 503))
async def model_version_ready(
    plane: DataPlaneDep, model_name: str, model_version: str
) -> types.ModelReady:
    """200 when this version serves; 404 when another one does."""
    plane.check_model(model_name, model_version)
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
    json_body = {"schema": _inlined(openapi.InferenceRequest.model_json_schema())}
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
    "response_model": openapi.InferenceResponse,
    "responses": {
        200: {"content": {"application/octet-stream": _BINARY}},
        **_responses(400, 404, 408, 413, 415, 500, 503, 504),
    },
    "openapi_extra": _infer_docs(),
}


@router.post(f"{_MODEL}/infer", **_INFER)
async def model_infer(
    request: Request,
    plane: DataPlaneDep,
    predictor: PredictorDep,
    limits: LimitsDep,
    model_name: str,
) -> Response:
    """Classify images: input `image` (BYTES, one encoded image file per element)."""
    return await _infer(request, plane, predictor, limits, model_name, None)


@router.post(f"{_VERSION}/infer", **_INFER)
async def model_version_infer(
    request: Request,
    plane: DataPlaneDep,
    predictor: PredictorDep,
    limits: LimitsDep,
    model_name: str,
    model_version: str,
) -> Response:
    """Classify images with this version; 404 unless it is the version that serves."""
    return await _infer(request, plane, predictor, limits, model_name, model_version)


async def _infer(
    request: Request,
    plane: DataPlane,
    predictor: Predictor,
    limits: UploadLimits,
    name: str,
    version: str | None,
) -> Response:
    # 413 for a declared body over the limit, then 404 or 503: before a byte of the body is read
    max_bytes = limits.max_v2_rest_bytes
    declared = bodies.declared_within(request.headers.get("content-length"), max_bytes)
    plane.check_model(name, version)
    with predictor.admit(declared) as admitted:
        body = await bodies.read_body(request, max_bytes, limits, admitted.meter)
        infer_request = await _parse(body, request.headers.get(HEADER_LENGTH))
        response = await plane.infer(infer_request, admitted, version)
    return _encoded(response)


async def _parse(body: bytes, header_length: str | None) -> types.InferRequest:
    # a large body (base64 JSON above all) takes milliseconds to parse: not on the event loop
    if len(body) > _PARSE_INLINE_BYTES:
        return await asyncio.to_thread(codec.parse_rest_request, body, header_length)
    return codec.parse_rest_request(body, header_length)


def _encoded(response: types.InferResponse) -> Response:
    body, header_length = codec.encode_rest_response(response)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)}
    )
