"""The spool of a labelled upload: each part written off the event loop into a private hidden
folder, removed when the request ends; folders left by dead processes are cleaned up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from app.dataset import layout
from app.dataset.spool import PREFIX, spooled
from app.store import processes


def test_parts_are_written_to_files_and_the_folder_is_removed_after(tmp_path: Path) -> None:
    async def scenario() -> Path:
        async with spooled(tmp_path) as spool:
            parts = [spool.write_later(f"{i}.jpg", bytes([i]) * 100) for i in range(3)]
            paths = [await part.writing for part in parts]
            assert [p.read_bytes() for p in paths] == [bytes([i]) * 100 for i in range(3)]
            assert [part.name for part in parts] == ["0.jpg", "1.jpg", "2.jpg"]
            assert spool.folder.name.startswith(PREFIX) and spool.folder.parent == tmp_path
            return spool.folder

    folder = asyncio.run(scenario())
    assert not folder.exists()


def test_the_spool_is_removed_when_the_request_fails(tmp_path: Path) -> None:
    folders: list[Path] = []

    async def scenario() -> None:
        async with spooled(tmp_path) as spool:
            folders.append(spool.folder)
            spool.write_later("a.jpg", b"x" * 1000)
            raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        asyncio.run(scenario())
    assert not folders[0].exists()


def test_the_spool_is_not_a_class_of_the_dataset(tmp_path: Path) -> None:
    async def scenario() -> list[Path]:
        async with spooled(tmp_path):
            return layout.class_folders(tmp_path)

    assert asyncio.run(scenario()) == []


def test_a_spool_left_by_a_dead_process_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    abandoned = tmp_path / f"{PREFIX}{processes.HOST}-{dead}-abcd1234"
    live = tmp_path / f"{PREFIX}{processes.HOST}-1-abcd1234"  # pid 1 runs
    other_host = tmp_path / f"{PREFIX}elsewhere-{dead}-abcd1234"
    for folder in (abandoned, live, other_host):
        folder.mkdir()

    async def scenario() -> None:
        async with spooled(tmp_path):
            pass

    asyncio.run(scenario())
    assert not abandoned.exists() and live.exists() and other_host.exists()
