"""Each version's out-of-sample prediction for every photo it was measured on, and what two
versions disagree about: ``<store>/<n>/predictions.json``, written by the trainer at publishing.

A photo is known by the SHA-256 of its bytes (its digest), so two versions trained on different
snapshots of a dataset are compared on the photos both were measured on, wherever they lie. The
predictions are the ones its accuracy was measured with: each photo's by a head that never trained
on it (out of fold), not by the published model.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from app.store.versions import ArtifactNotFound, Version

PREDICTIONS_FILE: Final = "predictions.json"
FORMAT: Final = 1
# Versions whose predictions find() keeps indexed: a comparison's thumbnails read two; an index
# is about 1 MB per 3,000 photos.
INDEXED_VERSIONS: Final = 4


@dataclass(frozen=True)
class PhotoPrediction:
    digest: str  # SHA-256 of the photo's bytes
    source: str  # where it was, relative to the dataset folder
    label: str  # the class folder it was in
    predicted: str
    confidence: float


def to_json(photos: Iterable[PhotoPrediction], evaluation: str) -> dict[str, Any]:
    rows = [[p.digest, p.source, p.label, p.predicted, round(p.confidence, 4)] for p in photos]
    columns = ["digest", "source", "label", "predicted", "confidence"]
    return {"format": FORMAT, "evaluation": evaluation, "columns": columns, "photos": rows}


def load(version: Version) -> list[PhotoPrediction]:
    """The version's per-photo predictions (ArtifactNotFound where it recorded none)."""
    return _read(version.path / PREDICTIONS_FILE, version.number)


def _read(path: Path, number: int) -> list[PhotoPrediction]:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return [PhotoPrediction(d, s, lab, pred, float(c)) for d, s, lab, pred, c in data["photos"]]
    except FileNotFoundError:
        raise ArtifactNotFound(
            f"version {number} recorded no per-photo predictions (versions published "
            "before they were recorded, or by another tool, have none)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ArtifactNotFound(f"version {number}'s {PREDICTIONS_FILE}: {error}") from None


@dataclass(frozen=True)
class Disagreement:
    digest: str
    source: str
    label: str
    a: PhotoPrediction
    b: PhotoPrediction


@dataclass(frozen=True)
class Comparison:
    common: int  # photos both versions were measured on, with the same label
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    relabelled: int  # photos in both whose class folder changed between the two runs
    disagreements: list[Disagreement]  # different answers, the ones only one got right first


def compare(a: list[PhotoPrediction], b: list[PhotoPrediction]) -> Comparison:
    """The photos both versions were measured on, and those on which their answers differ."""
    # By content and class: the same bytes may lie in two class folders (flower_photos has such
    # photos), and each copy is its own measured photo.
    theirs = {(p.digest, p.label): p for p in b}
    digests = {p.digest for p in b}
    counts = {"both": 0, "a": 0, "b": 0, "neither": 0}
    relabelled = 0
    differ: list[Disagreement] = []
    for mine in a:
        other = theirs.get((mine.digest, mine.label))
        if other is None:
            relabelled += mine.digest in digests
            continue
        right = (mine.predicted == mine.label, other.predicted == other.label)
        counts[
            {(True, True): "both", (True, False): "a", (False, True): "b"}.get(right, "neither")
        ] += 1
        if mine.predicted != other.predicted:
            differ.append(Disagreement(mine.digest, other.source, mine.label, mine, other))
    # the photos one version gets right and the other wrong first, then by where they are
    differ.sort(key=lambda d: (d.a.predicted != d.label and d.b.predicted != d.label, d.source))
    common = sum(counts.values())
    return Comparison(
        common, counts["both"], counts["a"], counts["b"], counts["neither"], relabelled, differ
    )


def find(version: Version, digest: str) -> PhotoPrediction:
    """The version's prediction for one photo (ArtifactNotFound when it did not measure it).

    A comparison page asks for one thumbnail per disagreement, so the file is parsed once per
    version: a published version's file never changes (its modification time is in the key, for
    a store rebuilt under the same path)."""
    path = version.path / PREDICTIONS_FILE
    try:
        changed = path.stat().st_mtime_ns
    except OSError:
        changed = -1  # load() says why
    photo = _indexed(version.path, version.number, changed).get(digest)
    if photo is None:
        raise ArtifactNotFound(f"version {version.number} was not measured on photo {digest[:12]}…")
    return photo


@functools.lru_cache(maxsize=INDEXED_VERSIONS)
def _indexed(folder: Path, number: int, changed: int) -> dict[str, PhotoPrediction]:
    return {photo.digest: photo for photo in _read(folder / PREDICTIONS_FILE, number)}
