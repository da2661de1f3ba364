"""Stopping a training run: Ctrl-C (SIGINT) or SIGTERM while the features are being computed
prints one line saying what was kept, exits 130 or 143, publishes nothing and leaves the
features it computed cached; ``flowers-serve --train-if-empty`` stopped the same way is quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import imaging
from bench.server import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _start(argv: list[str], store: Path, data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FLOWERS_MODEL_STORE": str(store), "FLOWERS_DATA_DIR": str(data)}
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell that starts the tests in the background ignores SIGINT in
        # its children, and Python then never turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=_ctrl_c_as_from_a_terminal,
    )


def _ctrl_c_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cached(store: Path) -> int:
    root = store / ".cache" / "features" / imaging.PREPROCESSING_VERSION
    return sum(1 for _ in root.rglob("*.npy")) if root.is_dir() else 0


def _stop_once_features_are_cached(process: subprocess.Popen[str], store: Path, sent: int) -> str:
    deadline = time.monotonic() + 300
    while _cached(store) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    if process.poll() is not None:
        _, stderr = process.communicate()
        if "could not obtain the ImageNet ResNet-50 weights" in stderr:
            pytest.skip(f"no ImageNet weights here: {stderr.strip()}")
        raise AssertionError(f"the run ended before it was stopped: {stderr}")
    process.send_signal(sent)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"still running 120 s after the signal:\n{stderr}") from None
    return stderr


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_says_what_it_kept(
    sent: int, code: int, tmp_path: Path, flowers_dev: Path
) -> None:
    store = tmp_path / "store"
    trainer = [sys.executable, "-m", "app.train", "--weights", "none", "--folds", "0"]
    process = _start(trainer, store, flowers_dev)
    stderr = _stop_once_features_are_cached(process, store, sent)
    assert process.returncode == code, stderr
    cached = _cached(store)
    assert cached >= 4
    assert stderr.splitlines()[-1] == (
        f"training interrupted; nothing published; {cached} features cached for the next run"
    )
    assert "Traceback" not in stderr
    assert sorted(p.name for p in store.iterdir()) == [".cache"]  # no version, no staging


def test_serve_training_first_is_stopped_quietly(tmp_path: Path, flowers_dev: Path) -> None:
    store = tmp_path / "store"
    serve = [sys.executable, "-m", "app.serve", "--train-if-empty", "--port", str(free_port())]
    process = _start(serve, store, flowers_dev)
    stderr = _stop_once_features_are_cached(process, store, signal.SIGTERM)  # as `docker stop`
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("training interrupted; nothing published; ")
    assert not (store / "active").exists()
