"""The real server in a subprocess (flowers-serve, or any command), for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2 as httpx

from bench.server import free_port
from tests.conftest import REPO


@dataclass
class Server:
    base: str
    port: int
    process: subprocess.Popen[str]
    env: dict[str, str] = field(default_factory=dict)  # what the test set on top of ours


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)]


@contextlib.contextmanager
def running_server(
    env: dict[str, str],
    command: list[str] | None = None,
    capture: bool = False,
    stop: bool = True,
    log: Path | None = None,
    until: str = "ready",
) -> Iterator[Server]:
    """Start the server with ``env`` on top of ours; yield it once ready (``until="live"``: once
    it answers at all, a server with no model); SIGTERM it after.

    Its output is discarded, piped (``capture``: read it, or a chatty server blocks), or
    written to the file ``log``."""
    port = free_port()
    log_file = log.open("w") if log is not None else None
    output: int | IO[str] = log_file or (subprocess.PIPE if capture else subprocess.DEVNULL)
    argv = serve_command(port) if command is None else [*command, "--port", str(port)]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if log_file is not None:
        log_file.close()  # the child holds its own copy
    server = Server(f"http://127.0.0.1:{port}", port, process, env)
    try:
        wait_ready(server, probe=f"/health/{until}")
        yield server
    finally:
        if stop and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=60)


def wait_ready(server: Server, timeout_s: float = 180, probe: str = "/health/ready") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.process.stdout.read() if server.process.stdout else ""
            raise AssertionError(f"the server exited with {server.process.returncode}: {output}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.base}{probe}", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError("the server never became ready")


def metric_value(metrics: str, series: str) -> float:
    """One series' value in Prometheus text (``name`` or ``name{labels}`` as the server writes
    it); 0 when the series is absent (a labelled counter appears on its first increment)."""
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0
