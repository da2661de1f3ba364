"""A retrain job's trainer: ``python -m app.train`` with the server's paths and the job's
options, run as a child process of this server (the cluster adapter runs it as a Ray task
instead: :mod:`app.cluster.training`).

The child runs at a lower CPU priority than serving, in its own process group (a cancel stops
it and everything it started), and dies with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, Protocol

from app import options
from app.config import Settings
from app.options import TrainOptions

CHILD_NICENESS: Final = 10


class Trainer(Protocol):
    """A running trainer: a child process of this server, or a task on a cluster node."""

    pid: int | None  # None where it is not a process of this host

    async def wait(self) -> int:
        """Its exit status (negative: the signal that stopped it)."""
        ...

    def terminate(self) -> None:
        """Ask it to stop: it unwinds and publishes nothing."""
        ...

    def kill(self) -> None: ...


Launch = Callable[[list[str], Path], Awaitable[Trainer]]  # (command, its log file) -> trainer


def retrain_command(settings: Settings, train_options: TrainOptions) -> list[str]:
    """A retrain job's trainer: ``python -m app.train`` with the server's paths and the recipe."""
    arguments = [
        sys.executable,
        "-m",
        "app.train",
        "--model-store",
        str(settings.model_store),
        "--weights",
        settings.retrain_weights,
        "--keep-versions",
        str(settings.keep_versions),
        *options.to_argv(train_options),
    ]
    if settings.data_dir is not None:
        arguments += ["--data-dir", str(settings.data_dir)]
    if settings.feature_cache is not None:
        arguments += ["--feature-cache", str(settings.feature_cache)]
    if settings.eval_dir is not None:
        arguments += ["--eval-dir", str(settings.eval_dir)]
    return arguments


async def launch_child(command: list[str], log_path: Path) -> Trainer:
    """The trainer as a child process of this server, in its own process group."""
    log = await asyncio.to_thread(log_path.open, "wb")
    with log:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return ChildTrainer(process)


class ChildTrainer:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid: int | None = process.pid

    async def wait(self) -> int:
        return await self._process.wait()

    def terminate(self) -> None:
        _signal_group(self._process.pid, signal.SIGTERM)

    def kill(self) -> None:
        _signal_group(self._process.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
