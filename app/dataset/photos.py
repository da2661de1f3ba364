"""A dataset photo a version was measured on, read back for an operator: found where the version
recorded it, inside the dataset folder, and only if its bytes still hash to the recorded digest
(a photo moved, replaced or deleted since is "no longer there", never another photo)."""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from pathlib import Path
from typing import Final

MAX_PHOTO_BYTES: Final = 64 * 1024 * 1024
READERS: Final = 4  # photos read at once, each held in memory whole: at most 256 MiB in all
_reading = threading.BoundedSemaphore(READERS)


class PhotoGone(LookupError):
    """The photo is no longer in the dataset as it was measured (404)."""


class PhotosBusy(RuntimeError):
    """READERS photos are being read already (503, retry)."""


def read_measured(root: Path, source: str, digest: str) -> tuple[bytes, str]:
    """The photo's bytes and media type (PhotosBusy while READERS reads are under way)."""
    if not _reading.acquire(blocking=False):
        raise PhotosBusy(f"{READERS} dataset photos are being read already; retry shortly")
    try:
        return _read(root, source, digest)
    finally:
        _reading.release()


def _read(root: Path, source: str, digest: str) -> tuple[bytes, str]:
    base = root.resolve()
    path = (base / source).resolve()
    gone = PhotoGone(f"{source} is no longer in the dataset as it was when measured")
    if not path.is_relative_to(base) or not path.is_file():
        raise gone
    try:
        if path.stat().st_size > MAX_PHOTO_BYTES:
            raise gone
        data = path.read_bytes()
    except OSError:
        raise gone from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise gone
    media_type = mimetypes.guess_type(path.name)[0]
    usable = media_type is not None and media_type.startswith("image/")
    return data, media_type if usable and media_type else "application/octet-stream"
