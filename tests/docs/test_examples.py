"""Every shell and Python example of the getting-started and REST API pages, run as written
against a real server (``python -m app.serve``) over the real flower model trained on the dev
photos, in page order, each output compared by shape with the one the page shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.docs.examples import Example, examples, matches, shape
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

PAGES = ("getting-started.md", "api.md", "predict.md")
TOKEN = "docs-examples-admin-d74b8e39a9c20a9ba42e0a1f"
DOCUMENTED_BASE = "http://localhost:8000"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, flowers_dev: Path) -> Path:
    """Where the examples run: the samples the pages use, made by the script `make samples` runs."""
    root = tmp_path_factory.mktemp("examples")
    env = {**os.environ, "SAMPLES_DIR": str(root / "samples"), "PYTHON": sys.executable}
    subprocess.run(
        ["scripts/sample-photos.sh", str(flowers_dev)], cwd=REPO, env=env, check=True
    )  # fmt: skip
    return root


@pytest.fixture(scope="module", params=PAGES)
def page_server(
    request: pytest.FixtureRequest,
    flowers_store: Path,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Server]]:
    """One server per page, as the page starts it: its own copy of the store, an admin token."""
    store = tmp_path_factory.mktemp("store") / "store"
    shutil.copytree(flowers_store, store)
    env = {"FLOWERS_MODEL_STORE": str(store), "FLOWERS_ADMIN_TOKEN": TOKEN}
    with running_server(env) as server:
        yield request.param, server


def _run(example: Example, server: Server, workdir: Path) -> str:
    code = example.code.replace(DOCUMENTED_BASE, server.base)
    command = ["bash", "-c", code] if example.kind == "shell" else [sys.executable, "-c", code]
    store = server.env["FLOWERS_MODEL_STORE"]  # what `flowers-predict` reads without --url
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "FLOWERS_ADMIN_TOKEN": TOKEN, "FLOWERS_MODEL_STORE": store, "PATH": path}
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_of_the_page_runs_and_prints_what_the_page_shows(
    page_server: tuple[str, Server], workdir: Path
) -> None:
    page, server = page_server
    found = examples(REPO / "docs" / page)
    run = [example for example in found if example.not_run is None]
    assert run, f"{page} has no example to run"
    for example in found:
        if example.not_run is not None:
            print(f"\n{example.name} not run: {example.not_run}")
            continue
        output = _run(example, server, workdir)
        assert matches(example.expected, output), (
            f"{example.name}: the output's shape differs from the page's\n"
            f"page:   {shape(example.expected)}\nactual: {shape(output)}\n{output}"
        )
    print(f"\n{page}: {len(run)} examples run, {len(found) - len(run)} shown only")
