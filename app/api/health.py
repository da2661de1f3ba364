"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.errors import RETRY_AFTER_S
from app.api.schemas import Health
from app.serving.models import LoadedModel
from app.serving.service import Service

router = APIRouter(tags=["operations"])


@router.get("/health/live", response_model=Health)
async def live(request: Request) -> Health:
    """200 while the process serves (with the version it serves, if any)."""
    model = _serving(request)
    return Health(status="ok", model_version=str(model.number) if model else None)


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "No warmed-up model is loaded yet"}},
)
async def ready(request: Request) -> Response:
    """200 only when a warmed-up model is loaded; 503 otherwise."""
    model = _serving(request)
    if model is None:
        body = Health(status="not ready").model_dump()
        return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER_S})
    return JSONResponse(Health(status="ok", model_version=str(model.number)).model_dump())


def _serving(request: Request) -> LoadedModel | None:
    service: Service | None = getattr(request.app.state, "service", None)
    return service.models.current if service is not None else None


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
