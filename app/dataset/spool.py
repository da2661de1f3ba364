"""Labelled uploads spooled to disk part by part, so a request of 16 large photos never sits in
memory whole: each file part is written to a private folder inside the dataset folder as soon as
it has arrived (in a worker thread), then the files are checked and stored one at a time.

The folder is hidden (``.incoming-<host>-<pid>-<random>``: the dataset scan skips it) and
removed when the request ends; one left by a process that died is removed by the next spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.store import processes

PREFIX: Final = ".incoming-"


@dataclass(frozen=True)
class SpooledPart:
    """One uploaded file, named as it was sent, on its way to its own file in the spool."""

    name: str
    writing: asyncio.Future[Path]


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writes: list[asyncio.Future[Path]] = []

    def write_later(self, name: str, data: bytes) -> SpooledPart:
        """Start writing one part to its own file (off the event loop)."""
        path = self.folder / f"{len(self.writes):04d}"
        write = asyncio.get_running_loop().run_in_executor(None, _write, path, data)
        self.writes.append(write)
        return SpooledPart(name, write)


@contextlib.asynccontextmanager
async def spooled(root: Path) -> AsyncIterator[Spool]:
    """A private spool folder inside ``root`` for the duration of one request."""
    folder = root / f"{PREFIX}{processes.HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_create, root, folder)
    spool = Spool(folder)
    try:
        yield spool
    finally:
        await asyncio.gather(*spool.writes, return_exceptions=True)  # none writes after rmtree
        await asyncio.to_thread(shutil.rmtree, folder, True)


def _create(root: Path, folder: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    folder.mkdir()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _remove_abandoned(root: Path) -> None:
    for entry in root.glob(f"{PREFIX}*"):
        parts = entry.name.removeprefix(PREFIX).split("-")
        mine = len(parts) == 3 and parts[0] == processes.HOST and parts[1].isdecimal()
        if mine and not processes.pid_alive(int(parts[1])):
            shutil.rmtree(entry, ignore_errors=True)
