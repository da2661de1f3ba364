"""A retrain job's trainer as a Ray task: ``python -m app.train`` on whichever node has the
resources the job asks for (a GPU node when there is one), its output in the job's log.

The Coordinator's JobRunner watches it like a local child process (:class:`RayTrainer` is a
:class:`~app.jobs.trainers.Trainer`): same records, progress events, cancel and publish rules.
The trainer is started by name, never imported: serving code stays free of training code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final, Literal

import ray
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayError, TaskCancelledError

from app.jobs.trainers import Launch, Trainer

logger = logging.getLogger(__name__)

CANCEL_GRACE_S: Final = 15


class RetrainResources(BaseModel):
    """What a retrain task reserves on the cluster."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1, ge=0, description="CPUs reserved for the trainer")
    num_gpus: float | Literal["auto"] = Field(
        "auto", description="GPUs for the trainer; auto: 1 when the cluster has a GPU, else 0"
    )


def run_trainer(command: list[str], log_path: str) -> int:
    """The task body, on the chosen node: the trainer as a child of this worker, in its own
    process group; cancelling the task (KeyboardInterrupt here) stops it first."""
    argv = [sys.executable, *command[1:]]  # this node's interpreter (a node may differ)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            return process.wait()
        except KeyboardInterrupt:
            _stop(process)
            raise


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(CANCEL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class RayTrainer:
    """A trainer task seen as a Trainer: its exit status, terminate (cancel), kill (force)."""

    pid: int | None = None  # a process on some node, not of this host

    def __init__(self, ref: ray.ObjectRef[int]) -> None:
        self._ref = ref
        self._result = asyncio.ensure_future(self._outcome())

    async def _outcome(self) -> int:
        try:
            code: int = await self._ref
            return code
        except TaskCancelledError:
            return -signal.SIGTERM
        except RayError as error:  # the node or worker died
            logger.error("the retrain task failed: %s", error)
            return 1

    async def wait(self) -> int:
        # Shielded: JobRunner polls with timeouts, which must not cancel the task itself.
        return await asyncio.shield(self._result)

    def terminate(self) -> None:
        ray.cancel(self._ref)

    def kill(self) -> None:
        ray.cancel(self._ref, force=True)


def ray_launcher(resources: RetrainResources) -> Launch:
    """A JobRunner ``launch``: each trainer a Ray task with ``resources``."""

    async def launch(command: list[str], log_path: Path) -> Trainer:
        options: dict[str, Any] = {
            "num_cpus": resources.num_cpus,
            "num_gpus": _gpus(resources.num_gpus),
            "max_retries": 0,  # a failed run is reported, never silently run again
            "name": "flowers-retrain",
        }
        task = ray.remote(run_trainer).options(**options)
        return RayTrainer(task.remote(command, str(log_path)))

    return launch


def _gpus(wanted: float | Literal["auto"]) -> float:
    if wanted != "auto":
        return wanted
    gpus = ray.cluster_resources().get("GPU", 0)  # type: ignore[no-untyped-call]
    return 1.0 if gpus >= 1 else 0.0
