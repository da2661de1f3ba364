"""Who serves what on the cluster: every replica reports itself each second to the Coordinator.

Ray Serve routes requests but does not say which version a replica has loaded, nor how many
images it has batched; the replicas say it themselves.  A replica that stops reporting (killed,
its node gone) drops out after ``STALE_AFTER_S``; one that shuts down cleanly says goodbye.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from app.inference.control import ReplicaStatus
from app.inference.manager import ServingModel

INGRESS: Final = "Ingress"
MODEL: Final = "Model"
COORDINATOR: Final = "Coordinator"

REPORT_INTERVAL_S: Final = 1.0
STALE_AFTER_S: Final = 4.0
GOODBYE_KEPT_S: Final = 60.0  # a report still in flight after a goodbye is dropped meanwhile


@dataclass(frozen=True)
class ClusterView:
    """The store's active pointer and every live replica, as the Coordinator sees them."""

    active: int | None
    replicas: list[ReplicaStatus] = field(default_factory=list)

    @property
    def models(self) -> list[ReplicaStatus]:
        return [r for r in self.replicas if r.deployment == MODEL]

    def serving(self) -> ServingModel | None:
        """The version the cluster serves: the active one where a replica has it loaded, else
        the most recently loaded (during a swap, replicas differ for a moment)."""
        loaded = [r.model for r in self.models if r.model is not None]
        active = [m for m in loaded if m.number == self.active]
        chosen = active or sorted(loaded, key=lambda m: m.loaded_at)
        return chosen[-1] if chosen else None

    def served_everywhere(self, number: int) -> bool:
        """Every model replica serves ``number`` (and there is at least one)."""
        models = self.models
        return bool(models) and all(r.model and r.model.number == number for r in models)


class ReplicaRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reports: dict[str, tuple[float, ReplicaStatus]] = {}
        self._gone: dict[str, float] = {}  # replicas that said goodbye, and when

    def report(self, status: ReplicaStatus) -> None:
        """Keep a replica's newest report: one older than the kept one (by its sequence number),
        or from a replica that said goodbye, arrived late and is dropped."""
        now = self._clock()
        for replica, when in list(self._gone.items()):
            if when < now - GOODBYE_KEPT_S:
                del self._gone[replica]
        if status.replica in self._gone:
            return
        kept = self._reports.get(status.replica)
        if kept is not None and status.sequence and status.sequence <= kept[1].sequence:
            return
        self._reports[status.replica] = (now, status)

    def forget(self, replica: str) -> None:
        self._reports.pop(replica, None)
        self._gone[replica] = self._clock()

    def current(self) -> list[ReplicaStatus]:
        """The replicas heard from lately, by deployment, node and id."""
        cutoff = self._clock() - STALE_AFTER_S
        for replica, (heard, _) in list(self._reports.items()):
            if heard < cutoff:
                del self._reports[replica]
        statuses = [status for _, status in self._reports.values()]
        return sorted(statuses, key=lambda r: (r.deployment, r.node, r.replica))
