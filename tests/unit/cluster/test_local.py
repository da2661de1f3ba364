"""The local cluster's start-up: a node that dies says why (its log goes with the temp dir)."""

import subprocess
import sys
from pathlib import Path

import pytest

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
