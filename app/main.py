"""The composition root: the service's pieces built once and wired, and the app over them.

``uvicorn app.main:app`` serves ``create_app()`` with settings from the environment; the service
is then built and started in the app's lifespan.  ``python -m app.serve`` builds and starts it
itself, to serve gRPC beside the app (:mod:`app.serve`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.config import Settings
from app.dataset.flags import FlagQueue, RateLimiter
from app.dataset.labelling import DatasetWriter
from app.events import Published
from app.http import (
    admin,
    api_docs,
    classes,
    errors,
    examples,
    flags,
    health,
    multipart,
    predict,
    v2,
    web,
)
from app.http.auth import require_admin
from app.http.deps import Service
from app.http.middleware import RequestContextMiddleware
from app.inference import memory
from app.inference.admission import Admission
from app.inference.backend import InferenceBackend, LocalBackend
from app.inference.control import ModelControl
from app.inference.decoding import DecodeBudget
from app.inference.limits import UploadLimits
from app.inference.predictor import Predictor
from app.jobs.runner import JobControl, JobRunner
from app.jobs.trainers import retrain_command
from app.observability import logs
from app.observability.metrics import Metrics
from app.store.versions import ModelStore
from app.v2.dataplane import DataPlane

logger = logging.getLogger(__name__)


ServiceFactory = Callable[[Settings, Metrics], Service]


def create_app(
    settings: Settings | None = None,
    *,
    service: Service | None = None,
    build_service: ServiceFactory | None = None,
    configure_logging: bool = False,
    request_id_header: bool = True,
) -> FastAPI:
    """The HTTP API over a service.

    ``service``: built and started by the caller, who also stops it (``python -m app.serve``);
    else the lifespan builds one with ``build_service`` (by default the whole service in this
    process), starts it and stops it.  ``request_id_header=False`` behind a proxy that sets
    X-Request-ID on responses itself (Ray Serve's), so that a response never carries two.
    """
    settings = settings or Settings()
    if configure_logging:
        logs.configure(settings.log_level, settings.log_format)
    metrics = service.metrics if service is not None else Metrics()
    app = FastAPI(
        title="Flower classifier",
        version="1.0",
        summary="ResNet-50 flower classification with dynamic batching and hot-swapped versions",
        lifespan=_lifespan,
        # Starlette's slash redirect builds an absolute URL from the client's Host header
        # (Host: evil.example -> Location: http://evil.example/...): a wrong path is a 404.
        redirect_slashes=False,
        # /docs and /redoc are served from vendored files (app.http.api_docs), never a CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = service
    app.state.build_service = None if service is not None else build_service or build_local_service
    errors.install(app, metrics)
    pages = (web.router, api_docs.router)
    public = (predict.router, flags.router, classes.router, examples.router, health.router)
    for router in (*public, v2.router, *pages):
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
    build: ServiceFactory | None = app.state.build_service
    if build is None:  # the caller started the service and stops it
        yield
        return
    service = build(app.state.settings, app.state.metrics)
    await service.start()
    app.state.service = service
    try:
        yield
    finally:
        await service.stop()


def assemble(
    settings: Settings,
    metrics: Metrics,
    backend: InferenceBackend,
    control: ModelControl,
    jobs: JobControl,
) -> Service:
    """A service over a backend and job control (here or on a cluster): everything else is the
    same wherever it runs."""
    limits = UploadLimits.from_settings(settings)
    admission = Admission(settings.max_inflight_bytes)
    store = ModelStore(settings.model_store)
    decoding = DecodeBudget(settings.decode_budget_pixels, settings.max_request_pixels)
    predictor = Predictor(
        backend, admission, decoding, settings.max_image_pixels, settings.request_timeout_s
    )
    dataset = (
        DatasetWriter(settings.data_dir, settings.max_image_pixels) if settings.data_dir else None
    )
    dataplane = DataPlane(backend, store, limits)
    flag_queue = (
        FlagQueue(settings.model_store / "flags", settings.max_flags, settings.max_image_pixels)
        if settings.max_flags
        else None
    )
    return Service(
        settings=settings,
        metrics=metrics,
        limits=limits,
        admission=admission,
        store=store,
        backend=backend,
        control=control,
        predictor=predictor,
        dataplane=dataplane,
        jobs=jobs,
        dataset=dataset,
        flags=flag_queue,
        flag_limiter=RateLimiter(settings.flags_per_minute, window_s=60),
    )


def build_local_service(settings: Settings, metrics: Metrics) -> Service:
    """The whole service in this process: batcher, models, store follower, child-process
    retrains (the model loads in the background once started: liveness answers at once)."""
    from app.inference.loading import local_backend  # TensorFlow: only where a model runs

    backend = local_backend(settings, batch_observer=metrics, model_observer=metrics)
    jobs = JobRunner(
        backend.store, partial(retrain_command, settings), partial(_serve_published, backend)
    )
    return assemble(settings, metrics, backend, backend, jobs)


async def _serve_published(backend: LocalBackend, published: Published) -> None:
    # Whatever the job decided, the store's active pointer says what serves (an operator may
    # have rolled back while the job was publishing).
    await backend.follower.sync()


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` looks the app up here; building it lazily keeps `import app.main`
    # free of side effects (settings, logging) for tests and tools.
    if name != "app":
        raise AttributeError(name)
    application = create_app(configure_logging=True, build_service=_built_then_frozen)
    globals()["app"] = application
    return application


def _built_then_frozen(settings: Settings, metrics: Metrics) -> Service:
    """uvicorn's service, built as ``python -m app.serve`` builds its own
    (:func:`app.inference.memory.startup`; not for tests' apps)."""
    with memory.startup():
        return build_local_service(settings, metrics)
