"""A Ray cluster of several nodes on this machine, for ``make cluster``, the tests and the bench.

Each node is ``ray start --block`` on its own loopback address (127.0.0.2, 127.0.0.3, ...:
Ray rewrites 127.0.0.1 to the machine's external address), with its own ports and a temp dir of
its own.  It is stopped by PID: every process of the nodes' process trees (Ray's workers start
their own sessions, so a process group is not enough), never with ``ray stop``, which stops every
Ray process on the machine, other people's too.

    python -m app.cluster.local up deploy/ray/serve.yaml   # start, deploy, serve; Ctrl-C stops
    python -m app.cluster.local deploy CONFIG --address HOST:PORT   # onto a running cluster
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from app.config import Settings
from app.options import HelpFormatter, positive
from app.store.versions import ModelStore

HEAD_IP: Final = "127.0.0.2"
STOP_GRACE_S: Final = 5.0
START_ATTEMPTS: Final = 2  # tries per node: picked ports can be taken before the node binds them
_SERVE = str(Path(sys.executable).with_name("serve"))
_RAY = str(Path(sys.executable).with_name("ray"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalCluster:
    address: str  # the head's GCS, host:port
    temp_dir: Path
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """Every process of the cluster: the ``ray start`` of each node and all it started."""
        found: list[psutil.Process] = []
        for node in self.nodes:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(node.pid)
                found += [root, *root.children(recursive=True)]
        return found

    def stop(self, remove_temp_dir: bool = True) -> None:
        """SIGTERM every process of the cluster, SIGKILL what is left after STOP_GRACE_S."""
        processes = self.processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_S)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=STOP_GRACE_S)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=STOP_GRACE_S)
        if remove_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def deploy(self, config: Path, timeout_s: float = 600) -> None:
        """Deploy a Serve config file and wait until its applications run (or failed: raise)."""
        command = [sys.executable, "-m", "app.cluster.local", "deploy", str(config)]
        result = subprocess.run(
            [*command, "--address", self.address, "--timeout", str(timeout_s)],
            capture_output=True,
            text=True,
            timeout=timeout_s + 60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"deploying {config} failed:\n{result.stdout}\n{result.stderr}")


def start(
    nodes: int = 2,
    env: dict[str, str] | None = None,
    num_cpus: int | None = None,
    object_store_mb: int = 256,
    dashboard: bool = False,
    temp_dir: Path | None = None,
) -> LocalCluster:
    """Start ``nodes`` nodes (the first is the head) and wait until each one listens. A node
    that exits at start is started again once on other ports (say why on stderr): the ports are
    picked free, and another process may take one before the node binds it."""
    # Ray's socket paths must stay under ~107 characters: a short folder in /tmp.
    root = temp_dir or Path(tempfile.mkdtemp(prefix="flowers-ray-", dir="/tmp"))
    cluster = LocalCluster(address="", temp_dir=root)
    extra = ["--object-store-memory", str(object_store_mb * 1024 * 1024)]
    if num_cpus is not None:
        extra += ["--num-cpus", str(num_cpus)]
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    try:
        for index in range(nodes):
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    _start_node(cluster, f"127.0.0.{index + 2}", dashboard, extra, environment)
                    break
                except NodeExited as exited:
                    if attempt == START_ATTEMPTS:
                        raise
                    print(f"{exited}\nstarting it again on other ports", file=sys.stderr)
    except BaseException:
        cluster.stop()
        raise
    return cluster


class NodeExited(RuntimeError):
    """A node's ``ray start`` exited before it listened."""


def _start_node(
    cluster: LocalCluster, ip: str, dashboard: bool, extra: list[str], env: dict[str, str]
) -> None:
    """One node on ``ip``, the head when the cluster has none yet, on ports picked now."""
    manager_port = free_port(ip)
    if cluster.nodes:
        role, port = ["--address", cluster.address], manager_port
    else:
        port = free_port(HEAD_IP)
        cluster.address = f"{HEAD_IP}:{port}"
        role = ["--head", "--port", str(port), *_head_options(dashboard)]
    argv = [_RAY, "start", *role, *_node_options(ip, manager_port, cluster.temp_dir), *extra]
    log_path = cluster.temp_dir / f"node-{ip}.log"
    with log_path.open("wb") as log:
        node = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    cluster.nodes.append(node)
    try:
        _wait_listening(ip, port, node, log_path)
    except NodeExited:
        cluster.nodes.remove(node)  # gone: a head that failed is started as the head again
        raise


def _head_options(dashboard: bool) -> list[str]:
    options = ["--ray-client-server-port", str(free_port(HEAD_IP))]
    if not dashboard:
        return [*options, "--include-dashboard", "false"]
    port = free_port(HEAD_IP)
    return [*options, "--dashboard-host", HEAD_IP, "--dashboard-port", str(port)]


def _node_options(ip: str, manager_port: int, root: Path) -> list[str]:
    ports = {
        "--node-manager-port": manager_port,
        "--object-manager-port": free_port(ip),
        "--dashboard-agent-listen-port": free_port(ip),
        "--dashboard-agent-grpc-port": free_port(ip),
        "--runtime-env-agent-port": free_port(ip),
        "--metrics-export-port": free_port(ip),
    }
    options = [item for name, port in ports.items() for item in (name, str(port))]
    return ["--node-ip-address", ip, "--temp-dir", str(root), "--block", *options]


def _wait_listening(
    ip: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120
) -> None:
    """Until ``ip:port`` accepts connections; a node that exits first raises with the end of its
    log (the temp dir holding the log is removed when start-up fails)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeExited(
                f"the Ray node on {ip} exited with {process.returncode}; "
                f"the end of its output:\n{_tail(log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the Ray node on {ip} did not listen on port {port}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as error:
        return f"(its log {log} could not be read: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(its log is empty)"


def deploy_and_wait(config: Path, address: str, timeout_s: float) -> None:
    """``serve run CONFIG --non-blocking``, then wait until every application runs."""
    import yaml

    subprocess.run(
        [_SERVE, "run", str(config), "--address", address, "--non-blocking"],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    names = [a["name"] for a in yaml.safe_load(config.read_text())["applications"]]
    _wait_running(address, names, timeout_s)


def _wait_running(address: str, names: list[str], timeout_s: float) -> None:
    import ray
    from ray import serve

    ray.init(address=address, _node_ip_address=HEAD_IP, log_to_driver=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        applications = serve.status().applications
        states = {name: applications.get(name) for name in names}
        failed = [f"{n}: {s.message}" for n, s in states.items() if s and "FAIL" in s.status]
        if failed:
            raise SystemExit("\n".join(failed))
        if all(s is not None and s.status == "RUNNING" for s in states.values()):
            return
        time.sleep(1)
    raise SystemExit(f"{names} did not reach RUNNING within {timeout_s:g}s")


@contextlib.contextmanager
def running(nodes: int = 2, **options: Any) -> Iterator[LocalCluster]:
    cluster = start(nodes, **options)
    try:
        yield cluster
    finally:
        cluster.stop()


def _http_base(config: Path) -> str:
    import yaml

    port = yaml.safe_load(config.read_text()).get("http_options", {}).get("port", 8000)
    return f"http://{HEAD_IP}:{port}"


def _up(args: argparse.Namespace) -> int:
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"starting a {args.nodes}-node Ray cluster on 127.0.0.2..", flush=True)
    with running(args.nodes, env=_absolute_paths(), dashboard=args.dashboard) as cluster:
        print(f"  head: {cluster.address}; logs: {cluster.temp_dir}", flush=True)
        cluster.deploy(args.config)
        base = _http_base(args.config)
        if ModelStore(Settings().model_store).latest() is None:
            print("the model store is empty: `make train`, or POST /admin/retrain", flush=True)
        _print_ready(base, cluster)
        while not stopping:
            time.sleep(0.5)
        print("stopping the cluster (by PID)", flush=True)
    return 0


def _absolute_paths() -> dict[str, str]:
    """The store and dataset settings as absolute paths: Ray workers do not share our cwd."""
    names = ("FLOWERS_MODEL_STORE", "FLOWERS_DATA_DIR", "FLOWERS_FEATURE_CACHE")
    return {name: str(Path(os.environ[name]).resolve()) for name in names if os.environ.get(name)}


def _engine_line(replica: dict[str, str]) -> str:
    """'openvino in int8 (its float layers in bf16) on CPU', 'openvino in bf16 on CPU'."""
    arithmetic = replica["precision"]
    if arithmetic == "int8":
        arithmetic += f" (its float layers in {replica['float_precision']})"
    return f"{replica['engine']} in {arithmetic} on {replica['device']}"


def _print_ready(base: str, cluster: LocalCluster) -> None:
    try:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=10) as response:  # noqa: S310
            replicas = json.loads(response.read())["replicas"]
    except urllib.error.HTTPError as error:  # 503: no model in the store yet
        replicas = json.loads(error.read()).get("replicas", [])
    lines = [
        f"  {r['deployment']:<8} on {r['node']} (pid {r['pid']})"
        + (f": version {r['version']}, {_engine_line(r)}" if r["version"] else "")
        for r in replicas
    ]
    print(
        f"\nThe flower classifier runs on {len(cluster.nodes)} Ray nodes at {base}\n",
        *lines,
        f"\n  curl -F file=@rose.jpg {base}/predict",
        f"  curl {base}/model        # every replica: node, version, requests, batches",
        "Ctrl-C stops the cluster.\n",
        sep="\n",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    deploy_and_wait(args.config, args.address, args.timeout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.cluster.local",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start a local cluster, deploy CONFIG, serve until Ctrl-C",
        formatter_class=HelpFormatter,
    )
    up.add_argument("config", type=Path, help="a Ray Serve config (deploy/ray/serve.yaml)")
    up.add_argument(
        "--nodes", type=positive(int), default=2, help="Ray nodes, each on its own address"
    )
    up.add_argument("--dashboard", action="store_true", help="also start Ray's dashboard")
    deploy = commands.add_parser(
        "deploy",
        help="deploy CONFIG onto a running cluster and wait",
        formatter_class=HelpFormatter,
    )
    deploy.add_argument("config", type=Path, help="a Ray Serve config (deploy/ray/serve.yaml)")
    deploy.add_argument("--address", required=True, help="the head's GCS address, host:port")
    deploy.add_argument(
        "--timeout",
        type=positive(float),
        default=600,
        help="seconds to wait for every replica to serve",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
