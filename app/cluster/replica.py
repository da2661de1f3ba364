"""What a replica knows about itself, and how it tells the Coordinator (every second)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from app.cluster.registry import REPORT_INTERVAL_S
from app.inference.control import ReplicaStatus

logger = logging.getLogger(__name__)

_CALL_TIMEOUT_S: Final = 5.0
# This process's report numbers: one counter however many reporters it starts, so a newer report
# always carries a larger number
_SEQUENCE: Final = itertools.count(1)


@dataclass(frozen=True)
class Identity:
    deployment: str
    replica: str
    node: str
    pid: int

    def status(self, **fields: Any) -> ReplicaStatus:
        return ReplicaStatus(**dataclasses.asdict(self), **fields)


def identity() -> Identity:
    """This replica's deployment, Serve replica id, node address and process id."""
    replica_id = serve.get_replica_context().replica_id
    return Identity(
        deployment=replica_id.deployment_id.name,
        replica=replica_id.unique_id,
        node=ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        pid=os.getpid(),
    )


class StatusReporter:
    """Sends ``status()`` to the Coordinator every REPORT_INTERVAL_S; says goodbye on stop."""

    def __init__(
        self, coordinator: DeploymentHandle[Any], status: Callable[[], ReplicaStatus]
    ) -> None:
        self._coordinator = coordinator
        self._status = status
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._report(), name="reporter")

    async def report_now(self) -> None:
        status = dataclasses.replace(self._status(), sequence=next(_SEQUENCE))
        try:
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                await self._coordinator.report.remote(status)
        except Exception as error:  # the Coordinator restarting: the next report will do
            logger.debug("could not report to the coordinator: %s", error)

    async def _report(self) -> None:
        while True:
            await self.report_now()
            await asyncio.sleep(REPORT_INTERVAL_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                await self._coordinator.forget.remote(self._status().replica)
