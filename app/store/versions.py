"""The versioned model store: ``<root>/<version>/`` folders (TF Serving's layout) and an ``active``
pointer.

- A version is published atomically: written into a hidden staging folder in the same store,
  fsynced, then renamed to the next free number.  Readers never see a half-written version.
- ``<root>/active`` holds the number of the version that serves: the one source of truth.  It
  is replaced atomically, under the store's lock (``<root>/.lock``), so an operator's rollback
  and a trainer's activation never interleave: a trainer activates only if the pointer still
  names what it saw when it decided (:class:`ActivateIf`), otherwise the operator's choice stands
  and the new version's metadata says so.
- A version folder is *complete* when its ``metadata.json`` parses, names the same version and
  lists classes, and its ``model.keras`` is a non-empty Keras archive.  Anything else is skipped
  with an error log and refused at activation.
- With no pointer, the version to serve is the newest complete one that was not published with
  its activation refused: an unapproved version is never promoted by accident.
- A version is deleted (by an operator, or by retention: the newest N plus the active one are
  kept) by renaming its folder to a hidden ``.deleting-*`` name under the lock, then removing
  that.  Readers see a version whole or not at all; a kill -9 while its files are removed leaves
  only the hidden folder, which the next delete, prune or publish removes.  The active version
  is never deleted, and the check and the rename happen under the same lock as activation.

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
import time
import uuid
import zipfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from app.store import atomic, processes
from app.store.filelock import exclusive
from app.store.holds import Holds
from app.store.metadata import VersionMetadata

logger = logging.getLogger(__name__)

MODEL_FILE: Final = "model.keras"
METADATA_FILE: Final = "metadata.json"
ACTIVE_FILE: Final = "active"
LOCK_FILE: Final = ".lock"
STAGING_PREFIX: Final = ".staging-"
DELETING_PREFIX: Final = ".deleting-"
# The plots published with each version: training curves and the validation confusion matrix.
HISTORY_PLOT: Final = "history.png"
CONFUSION_PLOT: Final = "confusion.png"
PLOTS: Final = (HISTORY_PLOT, CONFUSION_PLOT)
EXAMPLES_DIR: Final = "examples"  # the version's example photos (app.training.examples)
STALE_STAGING_S: Final = 6 * 3600
MAX_POINTER_CHARS: Final = 9  # version numbers up to 999,999,999


class StoreError(RuntimeError):
    """A store operation failed (missing version, unreadable files, bad pointer)."""


class VersionNotFound(StoreError):
    """No folder for this version number."""


class ArtifactNotFound(StoreError):
    """The version exists but holds no such file (e.g. a plot of a version published without)."""


class VersionInUse(StoreError):
    """The version is active (or named as in use by the caller): it cannot be deleted."""


@dataclass(frozen=True)
class ActivateIf:
    """Activate a version being published if the pointer still names ``seen`` (None: no pointer),
    i.e. nobody moved it since the decision was made."""

    seen: int | None


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
        self.holds = Holds(self.root)

    def versions(self) -> list[Version]:
        """Every complete version, oldest first; incomplete folders are logged and skipped."""
        found = []
        for number in self._version_numbers():
            try:
                found.append(self.get(number))
            except VersionNotFound:
                continue  # deleted since the listing: nothing to report
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
        _check_model_file(path / MODEL_FILE)
        return Version(number=number, path=path, metadata=_typed(path, metadata))

    def latest(self) -> Version | None:
        complete = self.versions()
        return complete[-1] if complete else None

    def active_number(self) -> int | None:
        """The number in the ``active`` pointer, None when there is no pointer, StoreError when
        it holds anything but a version number (a garbled file never raises anything else)."""
        try:
            raw = (self.root / ACTIVE_FILE).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"the active pointer cannot be read: {error}") from None
        text = raw.strip()
        if not (text.isdigit() and len(text) <= MAX_POINTER_CHARS and not text.startswith(b"0")):
            shown = raw[:40].decode("ascii", errors="backslashreplace")
            raise StoreError(f"the active pointer holds {shown!r}, not a version number")
        return int(text)

    def pointer_or_none(self) -> int | None:
        """The pointer's number; None when there is none or it is garbled (both: no choice)."""
        try:
            return self.active_number()
        except StoreError:
            return None

    def active(self) -> Version | None:
        """The version that should serve: the pointer's, or :meth:`fallback` when there is none."""
        number = self.active_number()
        return self.fallback() if number is None else self.get(number)

    def fallback(self) -> Version | None:
        """The newest complete version that was not published with its activation refused."""
        approved = [v for v in self.versions() if v.metadata.activation.activated is not False]
        return approved[-1] if approved else None

    def set_active(self, number: int) -> Version:
        """Point ``active`` at a complete version (an operator's choice: unconditional)."""
        with exclusive(self.root / LOCK_FILE):
            version = self.get(number)
            self._write_pointer(number)
        return version

    def _write_pointer(self, number: int) -> None:
        atomic.write_text(self.root / ACTIVE_FILE, f"{number}\n")
        logger.info("model_store %s: version %d is now active", self.root, number)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder inside the store to write a version into; removed unless published."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_staging()
        self.remove_deleted()
        name = f"{STAGING_PREFIX}{processes.HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder = self.root / name
        folder.mkdir()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def publish(
        self, staged: Path, metadata: dict[str, Any], activate: ActivateIf | None = None
    ) -> Version:
        """Give the staged folder the next free version number, fsynced before it is visible;
        with ``activate``, point ``active`` at it in the same locked step if nobody moved the
        pointer since the decision (else the metadata records why it was not activated)."""
        _check_model_file(staged / MODEL_FILE)
        atomic.fsync_tree(staged)  # the slow part, before anyone waits on the lock
        with exclusive(self.root / LOCK_FILE):
            activated = activate is not None and self._still_active(activate, metadata)
            number = self._rename_into_place(staged, metadata)
            if activated:
                self._write_pointer(number)
        logger.info("model_store %s: published version %d", self.root, number)
        return self.get(number)

    def _still_active(self, activate: ActivateIf, metadata: dict[str, Any]) -> bool:
        try:
            now: int | str | None = self.active_number()
        except StoreError:
            now = "garbled"
        if now == activate.seen:
            return True
        reason = (
            f"not activated: the active version changed from {activate.seen} to {now} while this "
            "one was trained (that choice stands; activate this version to serve it)"
        )
        metadata["activation"] = {**metadata.get("activation", {}), "activated": False}
        metadata["activation"]["reason"] = reason
        return False

    def _rename_into_place(self, staged: Path, metadata: dict[str, Any]) -> int:
        while True:
            number = max(self._version_numbers(), default=0) + 1
            atomic.write_json(staged / METADATA_FILE, {**metadata, "version": number})
            try:
                os.rename(staged, self.root / str(number))
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # a publisher that does not take the lock took this number first
                raise
            atomic.fsync_dir(self.root)
            return number

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

    def plot(self, number: int, name: str) -> Path:
        """The path of one of a complete version's :data:`PLOTS` (ArtifactNotFound if absent)."""
        if name not in PLOTS:
            raise ValueError(f"{name!r} is not one of {PLOTS}")
        path = self.get(number).path / name
        if not path.is_file():
            raise ArtifactNotFound(f"version {number} has no {name}")
        return path

    def example(self, number: int, index: int) -> Path:
        """The path of a complete version's example photo ``index`` (ArtifactNotFound if absent).

        Only a file the version's metadata lists is ever opened: no part of a request's path
        reaches the file system.
        """
        version = self.get(number)
        photos = version.metadata.examples.photos
        if not 0 <= index < len(photos):
            raise ArtifactNotFound(f"version {number} has no example {index}")
        path = version.path / photos[index].file
        if path.parent != version.path / EXAMPLES_DIR or not path.is_file():
            raise ArtifactNotFound(f"version {number} has no example {index}")
        return path

    def size_bytes(self, version: Version) -> int:
        """Bytes of the version's files (0 for files deleted while counting)."""
        total = 0
        for folder, _, names in os.walk(version.path):
            for name in names:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total

    def delete(self, number: int, in_use: Collection[int] = ()) -> None:
        """Delete a version (complete or not); VersionInUse for the active one or one in
        ``in_use`` (e.g. the version a server is serving), VersionNotFound when there is none."""
        with exclusive(self.root / LOCK_FILE):
            if not (self.root / str(number)).is_dir():
                raise VersionNotFound(f"version {number} does not exist in {self.root}")
            if number in self._protected(in_use):
                raise VersionInUse(_in_use_reason(number, self.pointer_or_none()))
            hidden = self._hide(number)
            atomic.fsync_dir(self.root)
        shutil.rmtree(hidden, ignore_errors=True)
        logger.info("model_store %s: deleted version %d", self.root, number)

    def prune(self, keep: int, in_use: Collection[int] = ()) -> list[int]:
        """Retention: delete every complete version but the newest ``keep``, the active one and
        those in ``in_use``; ``keep`` 0 keeps everything.  The numbers deleted, oldest first."""
        self.remove_deleted()
        if keep <= 0 or not self.root.is_dir():
            return []
        with exclusive(self.root / LOCK_FILE):
            numbers = [version.number for version in self.versions()]
            kept = set(numbers[-keep:]) | self._protected(in_use)
            doomed = [number for number in numbers if number not in kept]
            hidden = [self._hide(number) for number in doomed]
            if hidden:
                atomic.fsync_dir(self.root)
        for folder in hidden:
            shutil.rmtree(folder, ignore_errors=True)
        if doomed:
            logger.info("model_store %s: retention deleted versions %s", self.root, doomed)
        return doomed

    def remove_deleted(self) -> None:
        """Finish deletions that a killed process left as hidden ``.deleting-*`` folders."""
        if self.root.is_dir():
            for entry in self.root.glob(f"{DELETING_PREFIX}*"):
                shutil.rmtree(entry, ignore_errors=True)

    def hold(self, number: int) -> Path:
        """Hold a complete version against deletion while it is loaded, activated or served
        (here or by any process sharing the store), until ``holds.release``: VersionNotFound
        (or StoreError) when it is not there.  The check and the hold are one locked step, so a
        deletion comes either before (and the hold fails) or after (and is refused)."""
        with exclusive(self.root / LOCK_FILE):
            self.get(number)
            return self.holds.hold(number)

    def _protected(self, in_use: Collection[int]) -> set[int]:
        """What a deletion must leave: ``in_use``, every version a live process holds, and the
        pointer's version (with no usable pointer, the fallback that serves instead)."""
        number = self.pointer_or_none()
        if number is None:
            fallback = self.fallback()
            number = fallback.number if fallback else None
        return {*in_use, *self.holds.held(), *([number] if number is not None else [])}

    def _hide(self, number: int) -> Path:
        """Rename a version folder out of sight (atomic): the first step of deleting it."""
        hidden = self.root / f"{DELETING_PREFIX}{number}-{uuid.uuid4().hex[:8]}"
        os.rename(self.root / str(number), hidden)
        return hidden


def _in_use_reason(number: int, pointer: int | None) -> str:
    if number == pointer:
        return f"version {number} is the active version: activate another one before deleting it"
    return (
        f"version {number} is in use (serving, or being loaded or activated, here or by a server "
        "sharing the store): activate another one, or wait, before deleting it"
    )


def _dead_local_publisher(name: str) -> bool:
    """``.staging-<host>-<pid>-<random>`` of this host whose process no longer runs."""
    parts = name.removeprefix(STAGING_PREFIX).split("-")
    if len(parts) != 3 or parts[0] != processes.HOST or not parts[1].isdecimal():
        return False
    return not processes.pid_alive(int(parts[1]))


def _check_model_file(path: Path) -> None:
    """A ``.keras`` file is a zip archive: an empty or truncated one cannot be loaded."""
    if not path.is_file():
        raise StoreError(f"{path} is missing")
    if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
        raise StoreError(f"{path} is empty or not a Keras archive (damaged or incomplete)")


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
