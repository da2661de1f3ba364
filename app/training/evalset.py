"""An evaluation folder (``--eval-dir``, ``FLOWERS_EVAL_DIR``): labelled photos never trained on.

Every version is scored on it at publishing, and ``if_better`` then compares the new version with
the active one on those photos: the one comparison that also catches a worse *dataset* (photos
mislabelled since), which cross-validation on the dataset itself cannot, since it measures against
the labels as they are. A photo whose bytes are also in the training photos is left out and
reported: it would be scored on a photo the model was fitted on.

The folder has the dataset's layout (a sub-folder per class); each of its classes must be one the
model knows (it may lack some). The active version is scored on the same photos: its figure as it
recorded it when the photos are the same (by content hash), otherwise its model is run on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from app.store.versions import Version
from app.training import dataset as datasets

DECIMALS: Final = 4
LISTED_DUPLICATES: Final = 20  # the metadata names this many; it counts them all

Predict = Callable[[np.ndarray], np.ndarray]  # (N, 180, 180, 3) float32 -> probabilities


@dataclass(frozen=True)
class EvalSet:
    root: Path
    data: datasets.Dataset  # the photos kept, labelled by the model's class indices
    duplicates: list[str]  # photos left out: their bytes are training photos
    content_hash: str  # of the photos kept and their classes

    def describe(self) -> str:
        left_out = (
            f", {len(self.duplicates)} left out as training photos" if self.duplicates else ""
        )
        return f"{len(self.data.samples)} photos of {self.root}{left_out}"


def check(root: Path, classes: Sequence[str], hash_files: bool = False) -> datasets.Dataset:
    """The folder's layout, before training starts (DatasetError: a missing folder, fewer than
    two classes, an empty class, or a class the dataset does not have)."""
    try:
        scanned = datasets.scan(root, hash_files=hash_files)
    except datasets.DatasetError as error:
        raise datasets.DatasetError(f"evaluation folder: {error}") from None
    unknown = [name for name in scanned.class_names if name not in classes]
    if unknown:
        raise datasets.DatasetError(
            f"the evaluation folder {root} has classes the dataset does not: "
            f"{', '.join(unknown)} (the dataset's: {', '.join(classes)})"
        )
    return scanned


def load(root: Path, classes: Sequence[str], training: Sequence[datasets.Sample]) -> EvalSet:
    """The folder's photos (DatasetError for a class the model does not know, or no photo)."""
    scanned = check(root, classes, hash_files=True)
    trained = {sample.digest for sample in training}
    kept, duplicates = [], []
    for sample in scanned.samples:
        name = scanned.class_names[sample.label]
        if sample.digest in trained:
            duplicates.append(sample.path.relative_to(root).as_posix())
            continue
        kept.append(datasets.Sample(sample.path, list(classes).index(name), sample.digest))
    if not kept:
        raise datasets.DatasetError(f"the evaluation folder {root} has no photo to score")
    data = datasets.Dataset(root, list(classes), kept)
    return EvalSet(root, data, duplicates, data.content_hash())


@dataclass(frozen=True)
class Scored:
    accuracy: float
    photos: int
    per_class: dict[str, float]  # recall of each class present


def score(eval_set: EvalSet, predict: Predict, batch_size: int = 16) -> Scored:
    """The accuracy of ``predict`` on the folder's readable photos."""
    data = eval_set.data
    images, kept = datasets.load_images(data, range(len(data.samples)))
    labels = np.array([data.samples[i].label for i in kept])
    predicted = np.concatenate(
        [
            predict(images[start : start + batch_size].astype(np.float32)).argmax(axis=1)
            for start in range(0, len(images), batch_size)
        ]
    )
    right = predicted == labels
    per_class = {
        data.class_names[label]: round(float(right[labels == label].mean()), DECIMALS)
        for label in sorted(set(labels.tolist()))
    }
    return Scored(round(float(right.mean()), DECIMALS), len(kept), per_class)


def recorded(active: Version, eval_set: EvalSet) -> float | None:
    """The active version's own figure on exactly these photos, if it recorded one."""
    entry = active.metadata.evaluation_set
    if entry is not None and entry.content_hash == eval_set.content_hash:
        return entry.accuracy
    return None


def as_metadata(eval_set: EvalSet, scored: Scored) -> dict[str, Any]:
    return {
        "folder": str(eval_set.root),
        "content_hash": eval_set.content_hash,
        "photos": scored.photos,
        "accuracy": scored.accuracy,
        "per_class_recall": scored.per_class,
        "duplicates_left_out": len(eval_set.duplicates),
        "duplicates": eval_set.duplicates[:LISTED_DUPLICATES],
    }
