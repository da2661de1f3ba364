"""API fuzzing from the OpenAPI schema with schemathesis, against the real server.

Every operation, positive and negative (malformed) bodies, headers and parameters, with and
without the admin token. Invariants (all of schemathesis's checks): no 5xx but the documented
503/504, every status documented, every response conforming to its schema; the server is still
healthy afterwards. The CI profile is bounded; the long profile is
``FLOWERS_FUZZ_API_EXAMPLES=200 FLOWERS_FUZZ_API_PHASES=coverage,fuzzing,stateful``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.conftest import REPO, write_colour_dataset
from tests.support.modelfactory import COLOURS, publish_tiny
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FLOWERS_FUZZ_API_EXAMPLES", "25"))
# The stateful phase (retrain -> job -> cancel sequences) runs in the long profile: its sequences
# depend on background jobs, and once it flagged a negative `file` value that multipart encoding
# drops on the wire (the request then carried only valid images and rightly succeeded).
PHASES = os.environ.get("FLOWERS_FUZZ_API_PHASES", "coverage,fuzzing")
TOKEN = "fuzz-admin-9dc110cbe17b671c62d26c7a"
CONFIG = Path(__file__).parent / "schemathesis.toml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    store = ModelStore(root / "store")
    publish_tiny(store, sorted(COLOURS))
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(write_colour_dataset(root / "data", per_class=4)),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_POLL_INTERVAL_S": "0",
        "FLOWERS_LOG_LEVEL": "warning",
    }
    with running_server(env) as server:
        yield server.base


def _fuzz(base: str, *headers: str) -> tuple[str, dict[str, int]]:
    # Every check is on by default; tests/e2e/schemathesis.toml says which statuses are
    # expected and where (and why) a check is off.
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/openapi.json",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "1",
        "--workers",
        "1",
        "--no-color",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--phases",
        PHASES,
    ]
    for header in headers:
        command += ["--header", header]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    counts = {
        key: int(value)
        for value, key in re.findall(
            r"(\d+) (operations?|test cases?|generated|passed|failed)", output
        )
    }
    assert result.returncode == 0, _failures(output)
    return output, counts


def _still_healthy(base: str) -> None:
    assert httpx.get(f"{base}/health/ready", timeout=10).status_code == 200
    files = {"file": ("ok.png", CONFIG.read_bytes(), "x/y")}
    assert httpx.post(f"{base}/predict", files=files, timeout=30).status_code == 400


def test_fuzzing_every_operation_with_the_admin_token(server: str) -> None:
    output, counts = _fuzz(server, f"Authorization: Bearer {TOKEN}")
    print("\nwith the admin token:", output.strip().splitlines()[-12:], counts)
    _still_healthy(server)


def test_fuzzing_every_operation_without_a_token(server: str) -> None:
    output, counts = _fuzz(server)
    print("\nwithout a token:", output.strip().splitlines()[-12:], counts)
    _still_healthy(server)


def _failures(output: str) -> str:
    """The failure headlines (ST codes, statuses) without the multi-kilobyte request bodies."""
    keep = [line for line in output.splitlines() if len(line) < 400]
    return "\n".join(keep)[-8000:]
