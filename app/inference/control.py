"""The control plane of inference: which version serves, and (on a cluster) who serves it.

Kept apart from the data plane (:class:`~app.inference.backend.InferenceBackend`): a request
never activates a version, and an operator's call never classifies an image.  In one process
both are the :class:`~app.inference.backend.LocalBackend`; on a Ray cluster, the Ingress's
:class:`~app.cluster.remote.RemoteBackend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.inference.manager import ServingModel


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica of a cluster deployment, as it last reported itself."""

    deployment: str
    replica: str
    node: str
    pid: int
    model: ServingModel | None = None
    requests: int = 0
    images: int = 0
    batches: int = 0
    retried: int = 0  # requests sent again because the replica answering them died
    # 1, 2, 3... per replica: reports can arrive out of order (each is its own remote call), and
    # an older one must not undo a newer one (a version shown as served after the swap)
    sequence: int = 0


class ModelControl(Protocol):
    def serving(self) -> ServingModel | None:
        """The model that answers requests now (None: not ready)."""
        ...

    async def activate(self, number: int) -> None:
        """Load and warm ``number`` beside the serving model, swap it in, point the store at it."""
        ...

    def replicas(self) -> list[ReplicaStatus] | None:
        """Every replica of a cluster deployment; None for one process."""
        ...
