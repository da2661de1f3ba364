"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.http.deps import MetricsDep, Service
from app.http.errors import RETRY_AFTER_S
from app.http.schemas import Health, cluster_fields
from app.inference.manager import ServingModel

router = APIRouter(tags=["operations"])


@router.get("/health/live", response_model=Health, response_model_exclude_unset=True)
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
    replicas = _replicas(request)
    if model is None:
        body = Health(status="not ready", **replicas).model_dump(exclude_unset=True)
        return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER_S})
    healthy = Health(status="ok", model_version=str(model.number), **replicas)
    return JSONResponse(healthy.model_dump(exclude_unset=True))


def _serving(request: Request) -> ServingModel | None:
    # Probes answer while the service is still being built (no service yet: nothing serves).
    service: Service | None = request.app.state.service
    return service.control.serving() if service is not None else None


def _replicas(request: Request) -> dict[str, Any]:
    """On a cluster: ``replicas`` and ``versions_served``; nothing for one process."""
    service: Service | None = request.app.state.service
    return cluster_fields(service.control.replicas() if service is not None else None)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
