"""``flowers-predict`` end to end, with the real flower model: in this process, through a real
server's REST API and through the Open Inference Protocol, it gives the server's own answers
for the same photos (to 1e-6), lists what it cannot read, and exits with the documented codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import REPO
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

PER_CLASS = 4


@pytest.fixture(scope="module")
def photos(flowers_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four photos of each class in nested folders, and a file that is not an image."""
    root = tmp_path_factory.mktemp("photos")
    for folder in sorted(p for p in flowers_dev.iterdir() if p.is_dir()):
        (root / "garden" / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(photo, root / "garden" / folder.name / photo.name)
    (root / "garden" / "notes.jpg").write_text("shopping list: tulip bulbs")
    return root


@pytest.fixture(scope="module")
def server(flowers_store: Path) -> Iterator[Server]:
    with running_server({"FLOWERS_MODEL_STORE": str(flowers_store)}) as server:
        yield server


def _predict(*args: str, store: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"FLOWERS_MODEL_STORE": str(store)} if store else {})}
    return subprocess.run(
        [sys.executable, "-m", "app.predict", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _probabilities(document: dict) -> dict[str, dict[str, float]]:
    return {
        Path(row["file"]).name: {rank["class"]: rank["p"] for rank in row["top_k"]}
        for row in document["predictions"]
    }


@pytest.fixture(scope="module")
def answers(photos: Path, flowers_store: Path, server: Server) -> dict[str, dict]:
    """The JSON each way of scoring writes for the same photos, all classes shown."""
    ways = {
        "local": ["--model-store", str(flowers_store)],
        "rest": ["--url", server.base],
        "v2": ["--url", server.base, "--protocol", "v2"],
    }
    found = {}
    for name, way in ways.items():
        done = _predict(*way, "--json", "--top-k", "5", str(photos / "garden"))
        assert done.returncode == 1, done.stderr  # the notes: listed, and exit status 1
        assert f"error: {photos}/garden/notes.jpg: the bytes are not a decodable image" in (
            done.stderr
        )
        found[name] = json.loads(done.stdout)
    return found


def test_every_way_gives_the_servers_own_answers(
    answers: dict[str, dict], photos: Path, server: Server
) -> None:
    files = sorted((photos / "garden").glob("*/*.jpg"))
    own = {}
    for start in range(0, len(files), 16):  # FLOWERS_MAX_FILES_PER_REQUEST
        parts = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in files[start:][:16]]
        reply = httpx.post(f"{server.base}/predict", files=parts, timeout=120)
        own |= {p["filename"]: p["probabilities"] for p in reply.json()["predictions"]}
    assert len(own) == 5 * PER_CLASS
    for way, document in answers.items():
        got = _probabilities(document)
        assert set(got) == set(own), way
        for name, probabilities in own.items():
            for label, value in probabilities.items():
                assert abs(got[name][label] - value) <= 1e-6, (way, name, label)
        assert document["unreadable"][0]["file"].endswith("notes.jpg")


def test_the_model_classifies_the_photos_as_labelled(answers: dict[str, dict]) -> None:
    rows = answers["local"]["predictions"]
    right = sum(Path(row["file"]).parent.name == row["class"] for row in rows)
    assert right >= 0.8 * len(rows)  # the real model: most dev photos in their own class


def test_the_table_and_skip_bad(photos: Path, flowers_store: Path) -> None:
    done = _predict("--skip-bad", str(photos / "garden" / "roses"), str(photos / "garden"),
                    store=flowers_store)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["file", "class", "p", "next", "2"]
    assert len(lines) == 1 + 5 * PER_CLASS  # the roses once, though named twice
    assert f"skipped: {photos}/garden/notes.jpg" in done.stderr
    assert "20 classified, 1 unreadable" in done.stderr


def test_csv_to_a_file(photos: Path, flowers_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    done = _predict("--csv", str(out), "--top-k", "2", "--quiet",
                    f"{photos}/garden/*/*.jpg", store=flowers_store)  # fmt: skip
    assert done.returncode == 0, done.stderr  # the pattern leaves out garden/notes.jpg
    assert done.stdout == "" and done.stderr == ""
    rows = out.read_text().splitlines()
    assert rows[0] == "file,version,class_1,p_1,class_2,p_2"
    assert len(rows) == 1 + 5 * PER_CLASS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:9", "x.jpg"], "error: x.jpg: no such file or folder"),
        (["--url", "http://127.0.0.1:9", "{photos}"], "error: http://127.0.0.1:9/classes:"),
        (["--url", "file:///etc", "{photos}"], "give an http:// or https:// URL"),
        (["--model-store", "{empty}", "{photos}"], "holds no usable version: train one"),
        (["--top-k", "0", "{photos}"], "0: give a number above 0"),
        (["--protocol", "v2", "{photos}"], "--protocol and --model need --url"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, photos: Path, tmp_path: Path
) -> None:
    argv = [arg.format(photos=photos, empty=tmp_path) for arg in args]
    done = _predict(*argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
