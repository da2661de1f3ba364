"""The Serve application: ``import_path: app.cluster.app:build`` (see deploy/ray/serve.yaml).

Replicas, autoscaling, GPUs and placement are Serve's deployment options, set in the config
file; the service's own settings are the FLOWERS_* environment of every node (or the
application's ``runtime_env.env_vars``); the builder's ``args`` are the cluster-only options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application
from ray.serve.deployment import Deployment

from app.cluster.coordinator import Coordinator
from app.cluster.ingress import Ingress
from app.cluster.model_deployment import Model
from app.cluster.training import RetrainResources


class ClusterArgs(BaseModel):
    """The application's ``args`` in the Serve config."""

    model_config = ConfigDict(extra="forbid")

    retrain: RetrainResources = Field(default_factory=RetrainResources)


def build(args: dict[str, Any]) -> Application:
    """The application: Ingress -> Model, both reporting to the Coordinator."""
    options = ClusterArgs.model_validate(args)  # unknown or bad args fail the deploy, named
    coordinator = _deployment(Coordinator).bind(options.retrain)
    return _deployment(Ingress).bind(_deployment(Model).bind(coordinator), coordinator)


def _deployment(decorated: object) -> Deployment:
    """``@serve.deployment`` made these classes Deployments (mypy ignores class decorators)."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated
