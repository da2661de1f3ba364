"""The real server for a benchmark: ``python -m app.serve`` in a subprocess, or the service on a
2-node Ray Serve cluster on this machine, plus their batch counters."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PIDS: dict[str, int] = {}  # base URL -> the server process serving it


def pid_of(base: str) -> int:
    """The process id of the server :func:`serving` started at ``base`` (to profile it)."""
    return _PIDS[base]


@contextlib.contextmanager
def serving(store: Path, settings: dict[str, str]) -> Iterator[str]:
    """Start the server with FLOWERS_* ``settings``; yield its base URL once it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "FLOWERS_MODEL_STORE": str(store),
        "FLOWERS_LOG_LEVEL": "warning",
        "FLOWERS_POLL_INTERVAL_S": "0",
        **{f"FLOWERS_{k.upper()}": v for k, v in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    _PIDS[base] = process.pid
    try:
        _wait_ready(base, process)
        yield base
    finally:
        _PIDS.pop(base, None)
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=60)


def _wait_ready(
    base: str, process: subprocess.Popen[str] | None = None, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the server exited: {process.stderr.read() if process.stderr else ''}"
            )
        with contextlib.suppress(OSError):
            if _get(f"{base}/health/ready", timeout=2)[0] == 200:
                return
        time.sleep(0.3)
    raise TimeoutError("the server never became ready")


@contextlib.contextmanager
def cluster_serving(
    store: Path, settings: dict[str, str], ingress: int = 1, gpus: float = 0
) -> Iterator[str]:
    """The service on a local 2-node Ray Serve cluster: ``ingress`` Ingress replicas and one Model
    replica (the same one engine as the single process, on ``gpus`` GPUs, with the Ray hops in
    between); its base URL once ready."""
    import yaml

    from app.cluster import local

    port = free_port()
    config = yaml.safe_load((REPO / "deploy" / "ray" / "serve.yaml").read_text())
    config["http_options"]["port"] = port
    for deployment in config["applications"][0]["deployments"]:
        deployment.pop("autoscaling_config", None)
        deployment.update(num_replicas=1, ray_actor_options={"num_cpus": 0})
        if deployment["name"] == "Ingress":
            deployment["num_replicas"] = ingress
        if deployment["name"] == "Model":
            deployment["ray_actor_options"]["num_gpus"] = gpus
    env = {
        "FLOWERS_MODEL_STORE": str(store.resolve()),
        "FLOWERS_LOG_LEVEL": "warning",
        **{f"FLOWERS_{k.upper()}": v for k, v in settings.items()},
    }
    with local.running(2, env=env) as cluster:
        path = cluster.temp_dir / "bench-serve.yaml"
        path.write_text(yaml.safe_dump(config))
        cluster.deploy(path)
        base = f"http://{local.HEAD_IP}:{port}"
        _wait_ready(base)
        yield base


def batch_counters(base: str) -> tuple[float, float]:
    """(images batched, model calls) so far, from the server's Prometheus histogram."""
    return engine_counters(base)[:2]


def engine_counters(base: str) -> tuple[float, float, float]:
    """(images batched, model calls, seconds the calls ran) so far, from one scrape of the
    server's Prometheus histograms."""
    text = _get(f"{base}/metrics")[1]
    names = ("flowers_batch_size_sum", "flowers_batch_size_count", "flowers_inference_seconds_sum")
    images, calls, seconds = (_series(text, name) for name in names)
    return images, calls, seconds


def _series(text: str, name: str) -> float:
    """One unlabelled series' value in Prometheus text; 0 when absent."""
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def cluster_batch_counters(base: str) -> tuple[float, float]:
    """(images batched, model calls) so far by the cluster's Model replicas (their reports)."""
    time.sleep(1.2)  # every replica reports once a second
    replicas = json.loads(_get(f"{base}/health/ready")[1]).get("replicas", [])
    models = [r for r in replicas if r["deployment"] == "Model"]
    return float(sum(r["images"] for r in models)), float(sum(r["batches"] for r in models))


def engine_of(base: str) -> str:
    return str(json.loads(_get(f"{base}/model")[1])["engine"])


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    """(status, body) of a GET on the local server (stdlib only: runs where httpx is absent)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
