"""A real 2-node Ray cluster on loopback addresses, started once for these tests, stopped by PID.

The service is deployed from deploy/ray/serve.yaml with the test's sizes: 2 Ingress and 2 Model
replicas (one of each per node), tiny real Keras models in a store of the test's own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from app.cluster import local
from app.store.versions import ModelStore
from tests.conftest import REPO, write_colour_dataset
from tests.support import imagefactory as make
from tests.support.modelfactory import colour_kernel, publish_tiny

TOKEN = "cluster-admin-2fe51570677ec121d027a2f7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["blue", "green", "red"]
NODES = ("127.0.0.2", "127.0.0.3")


@dataclass
class Deployed:
    cluster: local.LocalCluster
    port: int
    store: ModelStore
    config: dict[str, Any]
    root: Path
    grpc_port: int  # FLOWERS_GRPC_PORT in every replica's environment: none may bind it

    def base(self, node: int = 0) -> str:
        return f"http://{NODES[node]}:{self.port}"

    def get(self, path: str, node: int = 0, **options: Any) -> httpx.Response:
        return httpx.get(self.base(node) + path, timeout=60, **options)

    def post(self, path: str, node: int = 0, **options: Any) -> httpx.Response:
        return httpx.post(self.base(node) + path, timeout=300, **options)

    def replicas(self, deployment: str | None = None) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.get("/health/ready").json().get("replicas", [])
        return [r for r in listed if deployment in (None, r["deployment"])]

    def wait_for(self, condition: Any, timeout_s: float = 180, what: str = "") -> float:
        """Poll ``condition()`` until true; the seconds it took."""
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
            time.sleep(0.5)
        return time.monotonic() - started

    def redeploy(self, config: dict[str, Any]) -> None:
        path = self.root / "serve.yaml"
        path.write_text(yaml.safe_dump(config))
        self.cluster.deploy(path)
        self.config = config


def sized_config(port: int) -> dict[str, Any]:
    """deploy/ray/serve.yaml sized for this machine: 2 Ingress, 2 Model replicas, one per node."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy/ray/serve.yaml").read_text())
    config["http_options"]["port"] = port
    application = config["applications"][0]
    application["runtime_env"]["env_vars"]["FLOWERS_POLL_INTERVAL_S"] = "0.5"
    application["args"]["retrain"]["num_cpus"] = 0.1
    deployments = {d["name"]: d for d in application["deployments"]}
    for name in ("Ingress", "Model"):
        deployments[name].update(num_replicas=2, max_replicas_per_node=1)
        deployments[name]["ray_actor_options"]["num_cpus"] = 0.1
    deployments["Model"].pop("autoscaling_config")
    return config


# Package scope: the cluster (a dozen Ray processes, a share of a core even idle) is stopped once
# the cluster tests are done, not kept beside the rest of the suite until the session ends.
@pytest.fixture(scope="package")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("cluster")
    store = ModelStore(root / "store")
    publish_tiny(store, CLASSES, weights=colour_kernel(CLASSES, -1.0), val_accuracy=0.0)
    publish_tiny(store, CLASSES, seed=1, activate=False)
    grpc_port = local.free_port()
    env = {
        "FLOWERS_GRPC_PORT": str(grpc_port),
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(write_colour_dataset(root / "data")),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_ENGINE": "tensorflow",
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_MAX_BATCH_SIZE": "8",
        "FLOWERS_LOG_LEVEL": "warning",
    }
    cluster = local.start(len(NODES), env=env)
    try:
        port = local.free_port()
        deployment = Deployed(cluster, port, store, sized_config(port), root, grpc_port)
        deployment.redeploy(deployment.config)
        yield deployment
    finally:
        cluster.stop()


@dataclass
class LoadResult:
    statuses: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Readiness:
    """/health/ready polled every 0.1 s in a thread: its answers, in ``views``. A poll that
    fails ends the polling, and leaving the ``with`` block raises it: a test never reads a
    silently shortened list of answers."""

    def __init__(self, deployed: Deployed) -> None:
        self.deployed = deployed
        self.views: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Readiness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._error is not None and exc[0] is None:
            raise AssertionError(f"polling /health/ready failed: {self._error!r}") from self._error

    def _poll(self) -> None:
        try:
            while not self._stop.wait(0.1):
                self.views.append(self.deployed.get("/health/ready").json())
        except Exception as error:  # handed to the test in __exit__
            self._error = error


class Load:
    """``clients`` closed-loop clients posting photos through both nodes' proxies, in a thread."""

    def __init__(self, deployed: Deployed, clients: int = 16) -> None:
        self.deployed = deployed
        self.clients = clients
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._bodies = [make.jpeg(seed=i) for i in range(16)]

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.clients)))

    async def _client(self, index: int) -> None:
        base = self.deployed.base(index % len(NODES))
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            sent = index
            while not self._stop.is_set():
                body = self._bodies[sent % len(self._bodies)]
                sent += 1
                started = time.monotonic()
                try:
                    response = await client.post("/predict", files={"file": ("f.jpg", body)})
                except httpx.TransportError as error:
                    self._failed(type(error).__name__)
                    continue
                self.result.latencies_s.append(time.monotonic() - started)
                self.result.statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    self.result.versions[response.json()["model_version"]] += 1
                else:
                    self._failed(f"{response.status_code} {response.text[:200]}")

    def _failed(self, what: str) -> None:
        self.result.failures.append(what)


def counts_by_node(replicas: list[dict[str, Any]], key: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for replica in replicas:
        totals[replica["node"]] += replica[key]
    return dict(totals)
