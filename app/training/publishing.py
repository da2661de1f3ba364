"""Turn a trained model into a published store version: files, metadata, activation decision."""

from __future__ import annotations

import datetime
import json
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np

from app import imaging
from app.ml import network as models
from app.options import TrainOptions
from app.store import predictions
from app.store.versions import (
    CONFUSION_PLOT,
    HISTORY_PLOT,
    MODEL_FILE,
    ActivateIf,
    ModelStore,
    StoreError,
    Version,
)
from app.training import dataset as datasets
from app.training import evalset, evaluation, examples, pairing
from app.training.finetune import HeldOut, fine_tuning_record
from app.training.pipeline import TrainedModel
from app.training.progress import Reporter

logger = logging.getLogger(__name__)

_LIBRARIES = ("keras", "tensorflow", "numpy", "pillow", "openvino")


@dataclass(frozen=True)
class Activation:
    activate: bool
    reason: str
    compared_with: int | None = None
    active_accuracy: float | None = None
    seen: int | None = None  # the pointer when the decision was made


def publish(
    trained: TrainedModel,
    store: ModelStore,
    reporter: Reporter,
    before_publishing: Callable[[], None] = lambda: None,
) -> tuple[Version, Activation]:
    """Write the version folder, then publish it and (if the policy says so, and nobody moved
    the active pointer meanwhile) activate it in one locked step.

    ``before_publishing`` runs just before that step: the CLI holds cancellation there, so a
    version is either not published or published with its job's record complete.
    """
    reporter.phase("publish", f"writing a new version into {store.root}")
    on_folder = score_on_eval_folder(trained, store, reporter)
    activation = decide_activation(trained, store, on_folder)
    with store.staging() as folder:
        models.save(trained.classifier, folder / MODEL_FILE)
        evaluation.plot_history(trained.history, folder / HISTORY_PLOT)
        evaluation.plot_confusion(
            trained.report["confusion_matrix"], trained.data.class_names, folder / CONFUSION_PLOT
        )
        engines = _export_engines(trained, folder, reporter)
        shown = examples.write(
            trained.measured_samples,
            trained.data.class_names,
            trained.data.root,
            trained.config.options.examples,
            folder,
        )
        reporter.line(f"  examples for the public page: {_describe(shown)}")
        judged = predictions.to_json(photo_predictions(trained), trained.measured.describe())
        (folder / predictions.PREDICTIONS_FILE).write_text(json.dumps(judged))  # fsynced by publish
        metadata = {**build_metadata(trained, activation, engines), "examples": shown}
        if on_folder is not None:
            metadata["evaluation_set"] = on_folder.as_metadata()
        condition = ActivateIf(activation.seen) if activation.activate else None
        before_publishing()
        version = store.publish(folder, metadata, condition)
    final = version.metadata.activation
    if activation.activate and final.activated is False:  # an operator moved the pointer
        activation = Activation(False, final.reason or "not activated", seen=activation.seen)
    return version, activation


def photo_predictions(trained: TrainedModel) -> list[predictions.PhotoPrediction]:
    """Each measured photo's out-of-sample prediction, as its accuracy was measured."""
    names, root, measured = trained.data.class_names, trained.data.root, trained.measured
    photos = []
    for row, index in enumerate(measured.judged):
        sample = trained.measured_samples[int(index)]
        probabilities = measured.probabilities[row]
        best = int(np.argmax(probabilities))
        source = sample.path.relative_to(root).as_posix()
        label, confidence = names[sample.label], float(probabilities[best])
        photos.append(
            predictions.PhotoPrediction(sample.digest, source, label, names[best], confidence)
        )
    return photos


def _describe(shown: dict[str, Any]) -> str:
    photos = shown["photos"]
    if not photos:
        return f"none ({shown['reason']})"
    return f"{len(photos)} credited photos (shrunk copies, each with its credit line)"


def apply_retention(store: ModelStore, keep: int, reporter: Reporter) -> list[int]:
    """Delete the versions retention does not keep (the newest ``keep`` and the active one stay);
    a failure is reported, never fatal: the new version is published either way."""
    try:
        deleted = store.prune(keep)
    except (StoreError, OSError) as error:
        reporter.line(f"  retention: could not delete old versions: {error}")
        return []
    if deleted:
        reporter.line(f"  retention: deleted versions {deleted} (kept the newest {keep} + active)")
    return deleted


def _export_engines(trained: TrainedModel, folder: Path, reporter: Reporter) -> dict[str, Any]:
    if not trained.config.options.openvino:
        return {}
    from app.training.export import export_openvino
    from app.training.quantize import publish_int8

    exported = export_openvino(trained, folder, reporter)
    if exported.get("exported"):
        exported["int8"] = publish_int8(trained, folder, reporter)
    return {"openvino": exported}


ACCURACY_DECIMALS = 4  # the precision of every accuracy written into a version's metadata


@dataclass(frozen=True)
class OnEvalFolder:
    """The new version scored on the evaluation folder, and the active version on the same."""

    eval_set: evalset.EvalSet
    scored: evalset.Scored
    active_version: int | None = None
    active_accuracy: float | None = None
    active_source: str = ""  # "recorded" or "scored now", or why it has no figure

    def as_metadata(self) -> dict[str, Any]:
        active = {"version": self.active_version, "accuracy": self.active_accuracy}
        return {
            **evalset.as_metadata(self.eval_set, self.scored),
            "active": {**active, "source": self.active_source},
        }


def score_on_eval_folder(
    trained: TrainedModel, store: ModelStore, reporter: Reporter
) -> OnEvalFolder | None:
    """With an evaluation folder: both versions' accuracy on its photos (the active one's as it
    recorded it on the same photos, else from its model run now, which only if_better needs)."""
    root = trained.config.eval_dir
    if root is None:
        return None
    classes = trained.data.class_names
    try:
        eval_set = evalset.load(root, classes, trained.data.samples)
    except datasets.DatasetError as error:  # checked before training; changed since
        reporter.line(f"  evaluation folder not used: {error}")
        return None
    reporter.line(f"  evaluation folder: {eval_set.describe()}")
    scored = evalset.score(eval_set, lambda x: trained.classifier.predict(x, verbose=0))
    reporter.line(f"  this version on it: {scored.accuracy:.4f} ({scored.photos} photos)")
    try:
        active = store.active()
    except StoreError as error:
        return OnEvalFolder(
            eval_set, scored, active_source=f"the active version is unusable ({error})"
        )
    if active is None:
        return OnEvalFolder(eval_set, scored, active_source="no version was active")
    if active.classes != classes:
        why = f"active version {active.number}'s classes differ"
        return OnEvalFolder(eval_set, scored, active.number, active_source=why)
    accuracy, source = evalset.recorded(active, eval_set), "recorded"
    if accuracy is None and trained.config.options.activate != "if_better":
        why = f"not compared (activate={trained.config.options.activate}; scored for if_better)"
        return OnEvalFolder(eval_set, scored, active.number, active_source=why)
    if accuracy is None:
        model = models.load(active.model_path)
        accuracy = evalset.score(eval_set, lambda x: model.predict(x, verbose=0)).accuracy
        source = "scored now"
    reporter.line(f"  active version {active.number} on it: {accuracy:.4f} ({source})")
    return OnEvalFolder(eval_set, scored, active.number, accuracy, source)


def decide_activation(
    trained: TrainedModel, store: ModelStore, on_folder: OnEvalFolder | None = None
) -> Activation:
    """always / never / if_better: on the evaluation folder when there is one; else the two
    recipes paired on this run's folds (:mod:`app.training.pairing`); else each version's
    measured accuracy as its metadata reports it."""
    mode = trained.config.options.activate
    seen = store.pointer_or_none()
    if mode == "always":
        return Activation(True, "activate=always", seen=seen)
    if mode == "never":
        return Activation(False, "activate=never: published without activating", seen=seen)
    try:
        active = store.active()
    except StoreError as error:  # what cannot be read cannot be compared with
        unusable = f"the active version is unusable ({error}); activating the new one"
        return Activation(True, unusable, seen=seen)
    old = active.metadata.val_accuracy if active is not None else None
    if active is None or old is None:
        return Activation(True, "no version with a measured accuracy was active", seen=seen)
    if (
        on_folder is not None
        and on_folder.active_version == active.number
        and on_folder.active_accuracy is not None
    ):
        new_score, old_score = on_folder.scored.accuracy, on_folder.active_accuracy
        better = new_score >= old_score
        reason = (
            f"on the evaluation folder's {on_folder.scored.photos} photos (never trained on): "
            f"{new_score:.4f} {'>=' if better else '<'} active version {active.number}'s "
            f"{old_score:.4f} ({on_folder.active_source})"
        )
        return Activation(better, reason, active.number, old_score, seen=seen)
    added = pairing.added_after_folds(active, trained.config.options, trained.held_out)
    if isinstance(added, str):
        return Activation(False, added, active.number, old, seen=seen)
    paired = trained.paired
    if isinstance(paired, pairing.Paired) and paired.version == active.number:
        difference = _with_added(paired.difference, added)
        better = difference >= 0
        reason = f"{paired.describe()}{_describe_added(added, difference)}: "
        reason += "at least as good" if better else "worse"
        return Activation(better, reason, active.number, old, seen=seen)
    # Compared as recorded: metadata keeps 4 decimals, so a retrain measured exactly as well as
    # the active version (0.89818 then, 0.8982 on record) is "at least as good", as documented.
    new = round(trained.measured.accuracy, ACCURACY_DECIMALS)
    difference = _with_added(round(new - old, ACCURACY_DECIMALS), added)
    verdict = ">=" if difference >= 0 else "<"
    how = active.metadata.metrics.evaluation or "its validation split"
    reason = (
        f"{trained.measured.method} accuracy {new:.4f} {verdict} active version "
        f"{active.number}'s {old:.4f} ({how}){_describe_added(added, difference)}"
    )
    if isinstance(paired, str):
        reason += f"; not paired: {paired}"
    return Activation(difference >= 0, reason, active.number, old, seen=seen)


def _with_added(difference: float, added: list[pairing.AddedAfterFolds]) -> float:
    return round(difference + sum(term.signed for term in added), ACCURACY_DECIMALS)


def _describe_added(added: list[pairing.AddedAfterFolds], difference: float) -> str:
    """What the fine-tunings after the folds added, which the heads' comparison missed."""
    if not added:
        return ""
    return "".join(f"; {term.describe()}" for term in added) + f": {difference:+.4f} in all"


def build_metadata(
    trained: TrainedModel, activation: Activation, engines: dict[str, Any]
) -> dict[str, Any]:
    config, data, report, measured = trained.config, trained.data, trained.report, trained.measured
    judged = [trained.measured_samples[i].label for i in measured.judged]
    judged_counts = np.bincount(judged, minlength=len(data.class_names))
    job = {"job": {"id": config.job_id}} if config.job_id else {}
    return {
        **job,
        "classes": data.class_names,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "input": {"shape": list(models.INPUT_SHAPE), "dtype": "float32", "values": "RGB 0..255"},
        "preprocessing_version": imaging.PREPROCESSING_VERSION,
        "metrics": {
            # The accuracy to expect on new photos: measured on photos the measured heads never
            # trained on (out of fold); the published model was then fitted on trained_on photos.
            "val_accuracy": round(measured.accuracy, ACCURACY_DECIMALS),
            "accuracy_sd": round(measured.spread, 4),
            "fold_accuracies": [round(a, 4) for a in measured.accuracies],
            "evaluation": measured.describe(),
            "trained_on": trained.trained_on,
            "per_class": report["per_class"],
            "confusion_matrix": report["confusion_matrix"],
            **({"tta_flip": report["tta_flip"]} if "tta_flip" in report else {}),
            **_fine_tuning(config.options, trained.held_out),
        },
        "training": {
            **config.options.model_dump(mode="json"),
            "feature_cache": trained.feature_counts,
            "history": trained.history,
        },
        "dataset": {
            "root": str(data.root),
            "counts": data.counts(),
            "evaluated_counts": dict(zip(data.class_names, map(int, judged_counts), strict=True)),
            "content_hash": data.content_hash(),
            "skipped": [{"file": str(path), "reason": reason} for path, reason in data.skipped],
            "ignored_non_image_files": data.ignored_files,
        },
        "backbone": trained.backbone_info,
        "activation": {
            "policy": config.options.activate,
            "activated": activation.activate,
            "reason": activation.reason,
            **_paired(trained.paired),
        },
        "engines": engines,
        "timings_s": trained.timings,
        "libraries": _library_versions(),
    }


def _fine_tuning(options: TrainOptions, held_out: HeldOut | None) -> dict[str, Any]:
    record = fine_tuning_record(options, held_out)
    return {} if record is None else {"fine_tuning": record}


def _paired(paired: pairing.Paired | str | None) -> dict[str, Any]:
    if isinstance(paired, pairing.Paired):
        return {"paired": paired.as_metadata()}
    return {} if paired is None else {"not_paired": paired}


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions
