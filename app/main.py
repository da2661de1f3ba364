"""The app factory: build the pieces in the lifespan and wire the routers; no logic here.

``uvicorn app.main:app`` serves ``create_app()`` with settings from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api import admin, classes, errors, health, predict, uploads, web
from app.api.auth import require_admin
from app.api.middleware import RequestContextMiddleware
from app.config import Settings
from app.events import Published
from app.protocols import rest
from app.serving import logs
from app.serving.admission import Admission
from app.serving.batching import Batcher
from app.serving.jobs import JobRunner, retrain_command
from app.serving.labelling import DatasetWriter
from app.serving.metrics import Metrics
from app.serving.prediction import Predictor
from app.serving.service import Service
from app.store import ModelStore

if TYPE_CHECKING:
    from grpc import aio

    from app.serving.follower import StoreFollower

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, configure_logging: bool = False) -> FastAPI:
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
    errors.install(app, metrics)
    for router in (predict.router, classes.router, health.router, rest.router, web.router):
        app.include_router(router)
    app.include_router(admin.router, prefix="/admin", dependencies=[Depends(require_admin)])
    _document_upload_limit(app, settings.max_files_per_request)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"]
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


def _document_upload_limit(app: FastAPI, max_files: int) -> None:
    """This app's file limit in its OpenAPI document (routes are shared by every app)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            uploads.fill_file_limits(generate(), max_files)  # fills FastAPI's cached copy
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    service = _build_service(settings, app.state.metrics)
    await service.jobs.recover()
    service.batcher.start()
    app.state.service = service
    # Load and warm up in the background: liveness answers at once, readiness once warmed up;
    # then follow the store's active pointer (other replicas, the CLI).
    background = asyncio.create_task(_load_then_follow(service), name="model-loader")
    grpc_server: aio.Server | None = None
    try:
        if settings.grpc_port:
            grpc_server = await _start_grpc(service)
        yield
    finally:
        if grpc_server is not None:  # in-flight calls finish while the batcher still runs
            await grpc_server.stop(settings.shutdown_drain_s)
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await background
        await service.jobs.close()
        await service.batcher.stop(settings.shutdown_drain_s)
        service.predictor.close()


async def _start_grpc(service: Service) -> aio.Server:
    # Imported only to serve gRPC: the generated messages would clash with another copy of the
    # protocol (tritonclient's) in the same process.
    from app.protocols import grpc_service

    assert service.settings.grpc_port is not None
    return await grpc_service.start(service, service.settings.grpc_port)


def _build_service(settings: Settings, metrics: Metrics) -> Service:
    from app.devices import configure_devices  # imports TensorFlow: here, never at import time
    from app.engine import EngineChoice
    from app.serving.follower import StoreFollower
    from app.serving.models import ModelManager

    device = configure_devices()
    logger.info("inference device: %s (%s backend)", device.name, device.backend)
    store = ModelStore(settings.model_store)
    engines = EngineChoice(settings.engine, settings.max_batch_size, settings.engine_precision)
    models = ModelManager(store, device, engines)
    follower = StoreFollower(models)
    models.on_loaded.append(metrics.model_loaded)
    batcher = Batcher(
        models.run_batch,
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        queue_limit=settings.queue_limit,
        observer=metrics,
    )
    admission = Admission(settings.max_inflight_bytes)
    predictor = Predictor(
        batcher, models, admission, settings.max_image_pixels, settings.request_timeout_s
    )
    jobs = JobRunner(
        store,
        partial(retrain_command, settings),
        lambda published: _serve_published(follower, published),
    )
    writer = (
        DatasetWriter(settings.data_dir, settings.max_image_pixels) if settings.data_dir else None
    )
    return Service(
        settings, admission, store, metrics, models, follower, batcher, predictor, jobs, writer
    )


async def _serve_published(follower: StoreFollower, published: Published) -> None:
    # Whatever the job decided, the store's active pointer says what serves (an operator may
    # have rolled back while the job was publishing).
    await follower.sync()


async def _load_then_follow(service: Service) -> None:
    try:
        if await service.follower.start() is None:
            logger.warning("model_store %s holds no usable version: not ready", service.store.root)
    except Exception:
        logger.exception("the active model could not be loaded; the server is not ready")
    await service.follower.follow(service.settings.poll_interval_s)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` looks the app up here; building it lazily keeps `import app.main`
    # free of side effects (settings, logging) for tests and tools.
    if name != "app":
        raise AttributeError(name)
    application = create_app(configure_logging=True)
    globals()["app"] = application
    return application
