"""The app factory: build the pieces in the lifespan and wire the routers; no logic here.

``uvicorn app.main:app`` serves ``create_app()`` with settings from the environment.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.config import Settings
from app.dataset.labelling import DatasetWriter
from app.events import Published
from app.http import admin, classes, errors, health, multipart, predict, v2, web
from app.http.auth import require_admin
from app.http.middleware import RequestContextMiddleware
from app.http.service import Service
from app.inference.admission import Admission
from app.inference.backend import local_backend
from app.inference.predictor import Predictor
from app.jobs.runner import JobRunner, retrain_command
from app.observability import logs
from app.observability.metrics import Metrics

if TYPE_CHECKING:
    from grpc import aio

    from app.inference.follower import StoreFollower

logger = logging.getLogger(__name__)


ServiceFactory = Callable[[Settings, Metrics], Service]


def create_app(
    settings: Settings | None = None,
    *,
    configure_logging: bool = False,
    build_service: ServiceFactory | None = None,
    request_id_header: bool = True,
) -> FastAPI:
    """The API over a service built in the lifespan (by default the whole of it in-process).

    ``request_id_header=False`` behind a proxy that sets X-Request-ID on responses itself (Ray
    Serve's), so that a response never carries two.
    """
    settings = settings or Settings()
    if configure_logging:
        logs.configure(settings.log_level, settings.log_format)
    metrics = Metrics()
    app = FastAPI(
        title="Flower classifier",
        version="1.0",
        summary="ResNet-50 flower classification with dynamic batching and hot-swapped versions",
        lifespan=_lifespan,
        # Starlette's slash redirect builds an absolute URL from the client's Host header
        # (Host: evil.example -> Location: http://evil.example/...): a wrong path is a 404.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.build_service = build_service or build_local_service
    errors.install(app, metrics)
    for router in (predict.router, classes.router, health.router, v2.router, web.router):
        app.include_router(router)
    app.include_router(admin.router, prefix="/admin", dependencies=[Depends(require_admin)])
    _document_upload_limit(app, settings.max_files_per_request)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"]
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, request_id_header=request_id_header
    )
    return app


def _document_upload_limit(app: FastAPI, max_files: int) -> None:
    """This app's file limit in its OpenAPI document (routes are shared by every app)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            multipart.fill_file_limits(generate(), max_files)  # fills FastAPI's cached copy
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    build: ServiceFactory = app.state.build_service
    service = build(settings, app.state.metrics)
    await service.start()
    app.state.service = service
    grpc_server: aio.Server | None = None
    try:
        if settings.grpc_port:
            grpc_server = await _start_grpc(service)
        yield
    finally:
        if grpc_server is not None:  # in-flight calls finish while the batcher still runs
            await grpc_server.stop(settings.shutdown_drain_s)
        await service.stop()


async def _start_grpc(service: Service) -> aio.Server:
    # Imported only to serve gRPC: the generated messages would clash with another copy of the
    # protocol (tritonclient's) in the same process.
    from app.v2 import grpc_server

    assert service.settings.grpc_port is not None
    return await grpc_server.start(service, service.settings.grpc_port)


def build_local_service(settings: Settings, metrics: Metrics) -> Service:
    """The whole service in this process: batcher, models, store follower, child-process
    retrains (the model loads in the background once started: liveness answers at once)."""
    backend = local_backend(settings, observer=metrics, on_loaded=metrics.model_loaded)
    store = backend.store
    admission = Admission(settings.max_inflight_bytes)
    predictor = Predictor(backend, admission, settings.max_image_pixels, settings.request_timeout_s)
    jobs = JobRunner(
        store,
        partial(retrain_command, settings),
        lambda published: _serve_published(backend.follower, published),
    )
    writer = (
        DatasetWriter(settings.data_dir, settings.max_image_pixels) if settings.data_dir else None
    )
    return Service(settings, admission, store, metrics, backend, predictor, jobs, writer)


async def _serve_published(follower: StoreFollower, published: Published) -> None:
    # Whatever the job decided, the store's active pointer says what serves (an operator may
    # have rolled back while the job was publishing).
    await follower.sync()


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` looks the app up here; building it lazily keeps `import app.main`
    # free of side effects (settings, logging) for tests and tools.
    if name != "app":
        raise AttributeError(name)
    application = create_app(configure_logging=True)
    globals()["app"] = application
    return application
