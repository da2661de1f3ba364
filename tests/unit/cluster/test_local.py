"""The local cluster's start-up: a node that dies says why (its log goes with the temp dir)."""

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app.cluster import local
from app.cluster.local import _wait_listening, free_port


def test_a_node_that_exits_at_start_raises_with_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    script = "import sys; print('\\n'.join(f'line {i}' for i in range(100))); sys.exit(3)"
    with log.open("wb") as out:
        argv = [sys.executable, "-c", script]
        node = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    with pytest.raises(RuntimeError) as raised:
        _wait_listening("127.0.0.1", free_port(), node, log, timeout_s=30)
    message = str(raised.value)
    assert message.startswith("the Ray node on 127.0.0.1 exited with 3; the end of its output:")
    assert message.splitlines()[-1] == "line 99" and "line 70" in message
    assert "line 69" not in message  # the last 30 lines only


def test_a_node_whose_log_is_gone_still_says_it_exited(tmp_path: Path) -> None:
    node = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    with pytest.raises(RuntimeError, match=r"(?s)exited with 1; .*could not be read"):
        _wait_listening("127.0.0.1", free_port(), node, tmp_path / "missing.log", timeout_s=30)


def test_a_node_that_never_listens_times_out(tmp_path: Path) -> None:
    node = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(TimeoutError, match="did not listen on port"):
            _wait_listening("127.0.0.1", free_port(), node, tmp_path / "node.log", timeout_s=1)
    finally:
        node.kill()
        node.wait()


FAKE_RAY = """#!{python}
# A stand-in for `ray start --block`: exits 1 the first {fail} time(s) it is started on an address
# in {fails_on}, else listens on the node's port (the head's --port, a worker's
# --node-manager-port) until it is stopped. Each start is a line of calls.log.
import socket, sys, time
from pathlib import Path

argv = sys.argv[1:]
value = lambda flag: argv[argv.index(flag) + 1]
ip = value("--node-ip-address")
calls = Path({calls!r})
with calls.open("a") as log:
    print(" ".join(argv), file=log)
earlier = [line for line in calls.read_text().splitlines() if ip in line.split()]
if ip in {fails_on!r} and len(earlier) <= {fail}:
    print(f"raylet on {{ip}}: bind failed: address already in use")
    sys.exit(1)
port = int(value("--port") if "--head" in argv else value("--node-manager-port"))
server = socket.create_server((ip, port))
while True:
    time.sleep(1)
"""


def _fake_ray(tmp_path: Path, fails_on: list[str], fail: int) -> tuple[Path, Path]:
    calls = tmp_path / "calls.log"
    script = tmp_path / "ray"
    text = FAKE_RAY.format(python=sys.executable, calls=str(calls), fails_on=fails_on, fail=fail)
    script.write_text(text)
    script.chmod(0o755)
    return script, calls


def _starts(calls: Path, ip: str) -> list[list[str]]:
    return [line.split() for line in calls.read_text().splitlines() if ip in line.split()]


@pytest.mark.parametrize("ip", ["127.0.0.2", "127.0.0.3"])  # the head, a worker
def test_a_node_that_exits_at_start_is_started_again_on_other_ports(
    ip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script, calls = _fake_ray(tmp_path, [ip], fail=1)
    monkeypatch.setattr(local, "_RAY", str(script))
    (tmp_path / "cluster").mkdir()
    cluster = local.start(2, temp_dir=tmp_path / "cluster")
    try:
        assert [node.poll() for node in cluster.nodes] == [None, None]  # both running
        first, second = _starts(calls, ip)
        flag = "--port" if ip == local.HEAD_IP else "--node-manager-port"
        assert first[first.index(flag) + 1] != second[second.index(flag) + 1]
        worker = _starts(calls, "127.0.0.3")[-1]
        assert worker[worker.index("--address") + 1] == cluster.address  # the head that runs
        said = capsys.readouterr().err
        assert f"the Ray node on {ip} exited with 1" in said and "bind failed" in said
        assert "starting it again on other ports" in said
    finally:
        cluster.stop()


def test_a_node_that_exits_at_every_start_stops_the_nodes_already_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, calls = _fake_ray(tmp_path, ["127.0.0.3"], fail=local.START_ATTEMPTS)
    monkeypatch.setattr(local, "_RAY", str(script))
    (tmp_path / "cluster").mkdir()
    with pytest.raises(local.NodeExited, match=r"127\.0\.0\.3 exited with 1"):
        local.start(2, temp_dir=tmp_path / "cluster")
    assert len(_starts(calls, "127.0.0.3")) == local.START_ATTEMPTS
    running = [p.info["cmdline"] or [] for p in psutil.process_iter(["cmdline"])]
    assert not [argv for argv in running if str(script) in argv]  # the head was stopped


def test_the_ready_banner_names_each_model_replicas_arithmetic() -> None:
    replica = {"engine": "openvino", "device": "CPU", "precision": "int8"}
    replica["float_precision"] = "bf16"
    assert local._engine_line(replica) == "openvino in int8 (its float layers in bf16) on CPU"
    replica = {**replica, "precision": "f32", "float_precision": "f32"}
    assert local._engine_line(replica) == "openvino in f32 on CPU"
