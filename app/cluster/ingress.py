"""The Ingress deployment: the FastAPI app of :mod:`app.main`, over the cluster's backend.

It serves HTTP only: the Open Inference Protocol's gRPC server is started by ``python -m
app.serve`` beside its own app, never by the app, so an Ingress replica never binds
``FLOWERS_GRPC_PORT`` whatever its environment says.

Routes, upload limits, the error table, metrics and image decoding run here, on CPU replicas;
the decoded images go to a Model replica.  Serve's proxy in front sets X-Request-ID on every
request (the client's, or its own) and on every response, so the app does not add it again.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from app.cluster.registry import INGRESS
from app.cluster.remote import RemoteBackend, RemoteJobs
from app.cluster.replica import identity
from app.config import Settings
from app.http.deps import Service
from app.inference import memory
from app.jobs.records import JobRecords
from app.main import assemble, create_app
from app.observability.metrics import Metrics


@serve.deployment(name=INGRESS, max_ongoing_requests=256)
@serve.ingress()
class Ingress:
    def __init__(self, model: DeploymentHandle[Any], coordinator: DeploymentHandle[Any]) -> None:
        self._model = model
        self._coordinator = coordinator

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(
            Settings(),
            configure_logging=True,
            build_service=partial(cluster_service, self._model, self._coordinator),
            request_id_header=False,
        )


def cluster_service(
    model: DeploymentHandle[Any],
    coordinator: DeploymentHandle[Any],
    settings: Settings,
    metrics: Metrics,
) -> Service:
    """The service of an Ingress replica: decoding here, the model and the jobs elsewhere (its
    startup objects frozen, as every serving process's are: no model is ever loaded here)."""
    with memory.startup():
        backend = RemoteBackend(model, coordinator, settings, identity())
        jobs = RemoteJobs(coordinator, JobRecords(settings.model_store / "jobs"))
        return assemble(settings, metrics, backend, backend, jobs)
