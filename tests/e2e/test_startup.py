"""Starting the real server: the banner is printed by the process that holds the port, once its
model is loaded; a port another process holds is one clear line and exit status 2, before any
model is loaded."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.versions import ModelStore
from bench.server import free_port
from tests.conftest import REPO
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

FROZEN = "startup objects kept out of the garbage collector's full passes"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    publish_tiny(ModelStore(tmp_path / "store"), ["a", "b", "c"])
    return tmp_path / "store"


@pytest.fixture
def taken() -> Iterator[int]:
    """A port another process listens on (and answers nothing)."""
    with socket.create_server(("0.0.0.0", 0)) as other:
        yield other.getsockname()[1]


def _serve(store: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "FLOWERS_MODEL_STORE": str(store), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_http_port_in_use_is_one_line_and_exit_2(store: Path, taken: int) -> None:
    done = _serve(store, taken)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: port {taken} on 0.0.0.0 is already in use (another server?): stop it, or "
        "choose another port with --port\n"
    )
    assert "ready at" not in done.stdout and "loading version" not in done.stdout


def test_a_grpc_port_in_use_is_one_line_and_exit_2(store: Path, taken: int) -> None:
    done = _serve(store, free_port(), FLOWERS_GRPC_PORT=str(taken))
    assert done.returncode == 2
    assert f"error: port {taken} on " in done.stderr
    assert "choose another port with FLOWERS_GRPC_PORT" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "loading version" not in done.stdout


def test_the_banner_follows_readiness_in_the_process_that_listens(
    store: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with running_server({"FLOWERS_MODEL_STORE": str(store)}, log=log) as server:
        deadline = time.monotonic() + 10  # ready: the banner is at most one look away
        while "is ready at" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    output = log.read_text()
    assert f"The flower classifier is ready at http://localhost:{server.port}" in output
    assert output.index("now serving version 1") < output.index("is ready at")
    assert output.count("is ready at") == 1
    # the imports' objects are frozen before the model loads (a swap must free a model's)
    assert output.index(FROZEN) < output.index("loading version 1")


def test_uvicorns_app_freezes_its_startup_objects_before_the_model_loads(
    store: Path, tmp_path: Path
) -> None:
    log = tmp_path / "uvicorn.log"
    uvicorn = [sys.executable, "-m", "uvicorn", "app.main:app"]
    with running_server({"FLOWERS_MODEL_STORE": str(store)}, command=uvicorn, log=log):
        output = log.read_text()
    assert output.count(FROZEN) == 1
    assert output.index(FROZEN) < output.index("loading version 1")


def test_a_first_training_that_fails_leaves_the_server_live_not_ready(tmp_path: Path) -> None:
    """docker run on an empty store with a folder it cannot train on (here one class): the
    server says why in one line, then serves, live but not ready, instead of exiting."""
    (tmp_path / "data" / "roses").mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "FLOWERS_MODEL_STORE": str(tmp_path / "store"),
        "FLOWERS_DATA_DIR": str(tmp_path / "data"),
    }
    argv = [sys.executable, "-m", "app.serve", "--train-if-empty", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 120
        live = None
        while live != 200 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            url = f"http://127.0.0.1:{port}/health/live"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                live = answer.status
        assert live == 200, log.read_text()
        with pytest.raises(urllib.error.HTTPError) as ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2)
        ready.value.close()  # it holds the connection
        assert ready.value.code == 503
    finally:
        process.terminate()
        process.wait(timeout=60)
    output_text = log.read_text()
    assert "training failed (exit status 2): the server starts without a model" in output_text
    assert "Traceback" not in output_text
