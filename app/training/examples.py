"""The example photos a version ships for the public page: a few credited photos per class.

Only photos that the dataset's ``LICENSE.txt`` credits one by one are candidates (flower_photos'
layout: a line per photo, ``daisy/7410356270_9dff4d0e2e_n.jpg CC-BY by martinak15 - <url>``), so
every example is shown with its author and licence. A dataset without such a file ships none, and
the metadata says why: an operator's own photos are never put on a public page unasked.

The examples are copies, shrunk to :data:`MAX_SIDE` pixels and re-encoded (no EXIF, no original
bytes), written into the version's folder: they live and go with the version that serves them.
They are chosen in the order of their content hash, not by how well the model does on them; they
are training photos, so what the model answers on them says nothing about its accuracy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageOps

from app.store.versions import EXAMPLES_DIR
from app.training.dataset import Sample

logger = logging.getLogger(__name__)

LICENSE_FILE: Final = "LICENSE.txt"
MAX_SIDE: Final = 320  # px: enough for a thumbnail and for the model (which sees 180)
MAX_LICENSE_BYTES: Final = 4 * 1024 * 1024
_LICENSE_URL = re.compile(r"https?://creativecommons\.org/\S+")


@dataclass(frozen=True)
class Credits:
    """What a dataset's LICENSE.txt says: one credit line per photo, and the licence's address."""

    per_photo: dict[str, str]  # "class/file.jpg" -> "CC-BY by <author> - <url>"
    license_url: str | None


def read_credits(root: Path) -> Credits | None:
    """The credits in ``root/LICENSE.txt``; None where there is no such file (or it is unusable)."""
    path = root / LICENSE_FILE
    try:
        if not path.is_file() or path.stat().st_size > MAX_LICENSE_BYTES:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    per_photo: dict[str, str] = {}
    license_url = None
    for line in text.splitlines():
        name, _, credit = line.strip().partition(" ")
        if "/" in name and credit.strip():
            per_photo[name] = credit.strip()
        elif license_url is None and (found := _LICENSE_URL.search(line)):
            license_url = found.group(0)
    return Credits(per_photo, license_url)


def choose(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    root: Path,
    credits: Credits,
    per_class: int,
) -> list[tuple[Sample, str]]:
    """Up to ``per_class`` credited photos of each class, with their credit lines."""
    chosen: list[tuple[Sample, str]] = []
    for label in range(len(class_names)):
        candidates = []
        for sample in samples:
            if sample.label != label:
                continue
            credit = credits.per_photo.get(_relative(sample.path, root))
            if credit is not None:
                candidates.append((sample.digest, str(sample.path), sample, credit))
        candidates.sort()
        chosen.extend((sample, credit) for *_, sample, credit in candidates[:per_class])
    return chosen


def write(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    root: Path,
    per_class: int,
    folder: Path,
) -> dict[str, Any]:
    """Write the examples into ``folder/examples/`` and return their metadata entry."""
    if per_class == 0:
        return {"photos": [], "reason": "examples=0"}
    credits = read_credits(root)
    if credits is None or not credits.per_photo:
        reason = f"the dataset has no {LICENSE_FILE} crediting its photos one by one"
        return {"photos": [], "reason": reason}
    photos: list[dict[str, str]] = []
    (folder / EXAMPLES_DIR).mkdir()
    for sample, credit in choose(samples, class_names, root, credits, per_class):
        name = f"{EXAMPLES_DIR}/{len(photos)}.jpg"
        try:
            _shrink(sample.path, folder / name)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            logger.warning("example %s skipped: %s", sample.path, error)
            continue
        source = _relative(sample.path, root)
        entry = {"file": name, "class_name": class_names[sample.label], "source": source}
        photos.append({**entry, "credit": credit})
    written: dict[str, Any] = {"photos": photos, "license": credits.license_url}
    return written if photos else {**written, "reason": f"no photo is credited in {LICENSE_FILE}"}


def _shrink(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        shown = ImageOps.exif_transpose(image).convert("RGB")
    shown.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    shown.save(target, "JPEG", quality=85)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
