"""The versioned model store: ``<root>/<version>/`` folders (TF Serving's layout) and an ``active``
pointer.

- A version is published atomically: written into a hidden staging folder in the same store,
  fsynced, then renamed to the next free number.  Readers never see a half-written version.
- ``<root>/active`` holds the number of the version that serves; it is replaced atomically.
- A version folder is *complete* when its ``metadata.json`` parses, names the same version and
  lists classes, and its ``model.keras`` exists.  Anything else is skipped with an error log.

Several processes (replicas, the CLI, retrain jobs) may share one store: version numbers are
claimed by the rename itself, which fails if another publisher took the number first.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from app import atomic
from app.metadata import VersionMetadata

logger = logging.getLogger(__name__)

MODEL_FILE: Final = "model.keras"
METADATA_FILE: Final = "metadata.json"
ACTIVE_FILE: Final = "active"
STAGING_PREFIX: Final = ".staging-"
STALE_STAGING_S: Final = 6 * 3600


class StoreError(RuntimeError):
    """A store operation failed (missing version, unreadable files, bad pointer)."""


class VersionNotFound(StoreError):
    """No folder for this version number."""


@dataclass(frozen=True)
class Version:
    """A complete version in the store."""

    number: int
    path: Path
    metadata: VersionMetadata

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.classes)


class ModelStore:
    """One store folder; every method re-reads the disk, so other writers are always seen."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[Version]:
        """Every complete version, oldest first; incomplete folders are logged and skipped."""
        found = []
        for number in self._version_numbers():
            try:
                found.append(self.get(number))
            except StoreError as error:
                logger.error("skipping model_store version %s: %s", number, error)
        return found

    def _version_numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        names = (entry.name for entry in self.root.iterdir() if entry.is_dir())
        return sorted(int(name) for name in names if name.isdecimal() and not name.startswith("0"))

    def get(self, number: int) -> Version:
        """The complete version ``number``, or StoreError saying why it is not usable."""
        path = self.root / str(number)
        if not path.is_dir():
            raise VersionNotFound(f"version {number} does not exist in {self.root}")
        metadata = _read_metadata(path)
        if metadata.get("version") != number:
            raise StoreError(f"{path / METADATA_FILE} names version {metadata.get('version')!r}")
        if not isinstance(metadata.get("classes"), list) or not metadata["classes"]:
            raise StoreError(f"{path / METADATA_FILE} lists no classes")
        if not (path / MODEL_FILE).is_file():
            raise StoreError(f"{path / MODEL_FILE} is missing")
        return Version(number=number, path=path, metadata=_typed(path, metadata))

    def latest(self) -> Version | None:
        complete = self.versions()
        return complete[-1] if complete else None

    def active_number(self) -> int | None:
        """The number in the ``active`` pointer, or None when there is no pointer."""
        try:
            text = (self.root / ACTIVE_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not text.isdecimal():
            raise StoreError(f"the active pointer holds {text!r}, not a version number")
        return int(text)

    def active(self) -> Version | None:
        """The version that should serve: the pointer's, or the latest when there is none yet."""
        number = self.active_number()
        return self.latest() if number is None else self.get(number)

    def set_active(self, number: int) -> Version:
        """Point ``active`` at a complete version (atomic replace)."""
        version = self.get(number)
        atomic.write_text(self.root / ACTIVE_FILE, f"{number}\n")
        logger.info("model_store %s: version %d is now active", self.root, number)
        return version

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder inside the store to write a version into; removed unless published."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_staging()
        folder = self.root / f"{STAGING_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staged: Path, metadata: dict[str, Any]) -> Version:
        """Give the staged folder the next free version number; fsync before it becomes visible."""
        if not (staged / MODEL_FILE).is_file():
            raise StoreError(f"nothing to publish: {staged / MODEL_FILE} is missing")
        while True:
            number = max(self._version_numbers(), default=0) + 1
            atomic.write_json(staged / METADATA_FILE, {**metadata, "version": number})
            atomic.fsync_tree(staged)
            try:
                os.rename(staged, self.root / str(number))
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # another publisher took this number first
                raise
            atomic.fsync_dir(self.root)
            logger.info("model_store %s: published version %d", self.root, number)
            return self.get(number)

    def remove_stale_staging(self, max_age_s: float = STALE_STAGING_S) -> None:
        """Remove staging folders left by crashed publishers: at once when the publisher was a
        process of this host that is gone, else when old enough to be nobody's (a store may be
        shared by replicas on other hosts, whose process ids mean nothing here)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for entry in self.root.glob(f"{STAGING_PREFIX}*"):
            with contextlib.suppress(OSError):
                if _dead_local_publisher(entry.name) or now - entry.stat().st_mtime > max_age_s:
                    shutil.rmtree(entry)

    def load(self, number: int) -> Any:
        """Load a version's Keras model (safe mode)."""
        from app import model

        return model.load(self.get(number).model_path)

    def size_bytes(self, version: Version) -> int:
        return sum(file.stat().st_size for file in version.path.rglob("*") if file.is_file())


_HOST: Final = socket.gethostname().replace("-", "_") or "host"


def _dead_local_publisher(name: str) -> bool:
    """``.staging-<host>-<pid>-<random>`` of this host whose process no longer runs."""
    parts = name.removeprefix(STAGING_PREFIX).split("-")
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdecimal():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _typed(path: Path, metadata: dict[str, Any]) -> VersionMetadata:
    try:
        return VersionMetadata.model_validate(metadata)
    except ValidationError as error:
        raise StoreError(f"{path / METADATA_FILE} is not valid metadata: {error}") from None


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path / METADATA_FILE} is missing") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"{path / METADATA_FILE} is unreadable: {error}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path / METADATA_FILE} is not a JSON object")
    return data
