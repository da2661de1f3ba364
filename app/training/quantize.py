"""An INT8 OpenVINO IR beside the float one, made at publishing, kept only if it keeps the accuracy.

NNCF's post-training quantization with accuracy control (``quantize_with_accuracy_control``),
calibrated on training photos. The head and the GeM pooling (cubes and cube roots, which 8 bits
handle worst) are never quantized: they are a sliver of the compute. What quantization changes is
the backbone's features, so it is judged where the version's accuracy was measured, **on held-out
folds**: other photos' features, computed by the IR, go through the head of the fold that held
each photo out (a head that never saw it), with the float IR's features and with the INT8 IR's.
Accuracy control puts the layers that cost the most back in float until the IR is within both
bounds on those photos: at least :data:`MIN_AGREEMENT` of them given the class the version's own
float IR gives, *and* their accuracy on the labels dropped by at most ``--int8-max-drop`` (one
metric, :func:`bounds_metric`, steers by the bound nearer to being broken). The IR is kept only
when both hold; otherwise the version keeps its float IR alone, and the metadata says why.

Accuracy control compares in f32, the quantization alone, and the IR is kept on that check. Where
this CPU has bf16 (what ``auto`` compiles the float IR in), the same photos are checked again with
both IRs compiled in bf16, INT8 against float: the INT8 IR's layers kept in float are served in
bf16 only where that check holds both bounds too, else in f32, the arithmetic checked
(:func:`app.ml.engines.int8_float_precision`).

(Judged by the published head instead, the photos would all be ones it was fitted on: their
answers are surer than a new photo's, and the check would say little.) A conv5 fine-tuned after
the folds (``--no-fine-tune-in-folds``) differs from the one the folds' heads read, so its IR is
judged on the last fold, which its fine-tuning kept out, by the published head: it never saw
those photos either (:class:`FoldHeads` with that one head).

NNCF is optional (the ``openvino`` extra); without it a version simply has no INT8 IR.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from app.ml.engines import INT8_XML, OPENVINO_XML, choose_precision, cpu_capabilities
from app.training import dataset as datasets
from app.training.recipe import tunes_in_folds

if TYPE_CHECKING:
    from app.training.pipeline import TrainedModel
    from app.training.progress import Reporter

logger = logging.getLogger(__name__)

CALIBRATION_PHOTOS: Final = 300  # NNCF's default subset size
# Held-out photos the IR is checked on: 1,000 resolve the default bound (0.3 points) to 3 photos
CHECK_PHOTOS: Final = 1000
# Accuracy control ranks each quantized layer by the accuracy on this many batches of them (those
# the INT8 IR answers differently first): each rank compiles the model once; this bounds the rest.
RANKING_BATCHES: Final = 12
MIN_AGREEMENT: Final = 0.99
DECIMALS: Final = 4
BATCH: Final = 8  # photos per calibration and validation item
# Kept in float: the GeM pooling (Maximum = clip, Power, ReduceMean), the standardisation and the
# head (Multiply, MatMul). Names differ between exports; types do not.
FLOAT_TYPES: Final = ["Maximum", "Power", "ReduceMean", "Multiply", "MatMul"]
MAX_REVERTED: Final = 12  # layers accuracy control may put back in float before it gives up
# Between the features and the head's MatMul: the standardisation (elementwise, on constants).
_ELEMENTWISE: Final = frozenset({"Add", "Subtract", "Multiply", "Divide"})


class Head(Protocol):
    def predict(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FoldHeads:
    """The heads the version's accuracy was measured with: ``heads[fold_of[row]]`` never saw
    photo ``row`` (-1: a photo no head was judged on)."""

    heads: Sequence[Head]
    fold_of: np.ndarray


@dataclass(frozen=True)
class Checked:
    """The INT8 IR against the float one, on held-out photos, each judged by its fold's head."""

    photos: int
    float_accuracy: float
    int8_accuracy: float
    agreement: float  # share of photos where both give the same class
    int8_convolutions: int = 0  # convolutions whose input is quantized...
    convolutions: int = 0  # ...of all (accuracy control puts the costliest back in float)
    # The same photos with both IRs compiled in bf16, where this CPU has it
    served: Served | None = None

    @property
    def drop(self) -> float:
        return self.float_accuracy - self.int8_accuracy

    def as_record(self) -> dict[str, Any]:
        """The check's part of ``engines.openvino.int8`` in the metadata."""
        served = {"served": self.served.as_metadata()} if self.served else {}
        return {"held_out": self.as_metadata(), "compiled_in": "f32", **served}

    def as_metadata(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "float_accuracy": round(self.float_accuracy, DECIMALS),
            "int8_accuracy": round(self.int8_accuracy, DECIMALS),
            "drop": round(self.drop, DECIMALS),
            "agreement": round(self.agreement, DECIMALS),
            "int8_convolutions": f"{self.int8_convolutions} of {self.convolutions}",
        }


@dataclass(frozen=True)
class Served:
    """The check again with both IRs compiled in bf16, the float arithmetic ``auto`` serves in
    where the CPU has it; ``within_bounds``: its layers kept in float may be served in bf16."""

    precision: str
    checked: Checked
    within_bounds: bool

    def as_metadata(self) -> dict[str, Any]:
        held_out = self.checked.as_metadata()
        del held_out["int8_convolutions"]  # the same IR
        return {"compiled_in": self.precision, "within_bounds": self.within_bounds, **held_out}


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def publish_int8(trained: TrainedModel, folder: Path, reporter: Reporter) -> dict[str, Any]:
    """Make, check and keep (or delete) the version's INT8 IR: ``engines.openvino.int8``."""
    options = trained.config.options
    why_not = _not_made(trained)
    if why_not is not None:
        return {"kept": False, "reason": why_not}
    if not nncf_available():
        reporter.line("  NNCF is not installed: no INT8 IR (pip install '.[openvino]')")
        return {"kept": False, "reason": "nncf is not installed"}
    assert trained.fold_heads is not None
    started = time.monotonic()
    photos = datasets.Dataset(
        trained.data.root, trained.data.class_names, list(trained.measured_samples)
    )
    labels = np.array([sample.label for sample in photos.samples])
    calibrate, checked_on = split_photos(labels, options.seed, trained.fold_heads.fold_of)
    calibration, _ = datasets.load_images(photos, calibrate.tolist())
    images, kept = datasets.load_images(photos, checked_on.tolist())
    int8_xml = folder / INT8_XML
    try:
        result = quantize(
            folder / OPENVINO_XML,
            int8_xml,
            calibration,
            images,
            labels[kept],
            trained.fold_heads.heads,
            trained.fold_heads.fold_of[kept],
            max_drop=options.int8_max_drop,
        )
    except Exception as error:  # an INT8 IR is a bonus: it never fails publishing
        logger.exception("INT8 quantization failed")
        _remove(int8_xml)
        reporter.line(f"  INT8 IR not made: {type(error).__name__}: {error}")
        return {"kept": False, "reason": f"quantization failed: {type(error).__name__}: {error}"}
    seconds = time.monotonic() - started
    record: dict[str, Any] = {
        "calibration_photos": len(calibration),
        **result.as_record(),
        "max_drop": options.int8_max_drop,
        "min_agreement": MIN_AGREEMENT,
        "seconds": round(seconds, 1),
    }
    summary = (
        f"held-out accuracy {result.float_accuracy:.4f} -> {result.int8_accuracy:.4f}, top-1 "
        f"agreement {result.agreement:.4f} on {result.photos} photos not used to calibrate"
    )
    if result.served:
        served = result.served.checked
        where = result.served.precision if result.served.within_bounds else "f32"
        summary += (
            f"; in {result.served.precision}: {served.float_accuracy:.4f} -> "
            f"{served.int8_accuracy:.4f}, agreement {served.agreement:.4f} (its float layers "
            f"serve in {where})"
        )
    failed = verdict(result, options.int8_max_drop)
    if failed:
        _remove(int8_xml)
        reporter.line(f"  INT8 IR not kept ({failed}): {summary} ({seconds:.0f}s)")
        return {"kept": False, "reason": failed, **record}
    reporter.line(f"  INT8 IR kept: {summary} ({seconds:.0f}s)")
    return {"kept": True, "artifact": INT8_XML, **record}


def _not_made(trained: TrainedModel) -> str | None:
    options = trained.config.options
    if not options.int8:
        return "int8 is off (--no-int8)"
    if trained.config.weights == "none":
        return "the backbone is random (--weights none): it has no accuracy to keep"
    if tunes_in_folds(options):
        return (
            "a conv5 fine-tuned in every fold is not quantized (the held-out heads judged other "
            "conv5s; --no-fine-tune-in-folds keeps a fold out to judge it)"
        )
    if trained.fold_heads is None:
        return "no held-out heads were kept to judge it with"
    return None


def verdict(result: Checked, max_drop: float) -> str | None:
    """Why the INT8 IR is not kept, or None (the check in f32: the quantization alone)."""
    if result.drop > max_drop + 1e-9:
        return f"accuracy drop {result.drop:.4f} > {max_drop}"
    if result.agreement < MIN_AGREEMENT:
        return f"top-1 agreement {result.agreement:.4f} < {MIN_AGREEMENT}"
    return None


def split_photos(
    labels: np.ndarray, seed: int, fold_of: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the calibration photos and of the (disjoint) photos the IR is checked on: a seeded
    shuffle, each class in proportion; only photos a held-out head judged can be checked on, so
    the others calibrate first."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # interleave the classes so that any prefix holds each in proportion
    by_class = [order[labels[order] == label] for label in np.unique(labels)]
    ranks = np.concatenate([np.arange(len(rows)) / len(rows) for rows in by_class])
    mixed = np.concatenate(by_class)[np.argsort(ranks, kind="stable")]
    if fold_of is not None:  # calibrate on photos no head judged first, to check on the others
        mixed = np.concatenate([mixed[fold_of[mixed] < 0], mixed[fold_of[mixed] >= 0]])
    calibrate = mixed[: min(CALIBRATION_PHOTOS, max(1, len(mixed) // 2))]
    rest = mixed[len(calibrate) :]
    if fold_of is not None:
        rest = rest[fold_of[rest] >= 0]
    return calibrate, rest[:CHECK_PHOTOS]


def quantize(
    float_xml: Path,
    int8_xml: Path,
    calibration: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    heads: Sequence[Head],
    folds: np.ndarray,
    *,
    max_drop: float,
) -> Checked:
    """Write the INT8 IR of ``float_xml`` to ``int8_xml`` and check it: ``images[i]`` (RGB 0..255,
    (N, 180, 180, 3)) is judged by ``heads[folds[i]]`` on the features the IR computes; accuracy
    control aims at top-1 agreement >= :data:`MIN_AGREEMENT` and an accuracy drop <= max_drop."""
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    nncf.set_log_level(logging.WARNING)  # not a line per layer in the training output
    model = with_features_output(openvino.Core().read_model(str(float_xml)))

    # The float IR's classes: accuracy control's reference (and the accuracy it must keep).
    reference = _answers(_compiled(model), images, heads, folds)
    served_in = choose_precision("auto", cpu_capabilities())  # bf16 where this CPU has it
    served_reference = (
        _answers(_compiled(model, served_in), images, heads, folds) if served_in != "f32" else None
    )

    def metric(compiled: Any, items: Iterable[Any]) -> tuple[float, list[float]]:
        # an item is a batch of photos; the metric is over them all, and each batch's alone
        answers, floats, truths = [], [], []
        for batch, batch_reference, batch_folds, batch_labels in items:
            answers.append(_judge(_features(compiled, _floats(batch)), heads, batch_folds))
            floats.append(batch_reference)
            truths.append(batch_labels)
        whole = check(np.concatenate(floats), np.concatenate(answers), np.concatenate(truths))
        each = [check(*one) for one in zip(floats, answers, truths, strict=True)]
        return bounds_metric(whole, max_drop), [bounds_metric(one, max_drop) for one in each]

    # Views of the photos as given (uint8 from the trainer), made float one batch at a time: a
    # float copy of them all would hold 1,300 x 389 KB (about 500 MB) through quantization.
    items = [
        (
            images[i : i + BATCH],
            reference[i : i + BATCH],
            folds[i : i + BATCH],
            labels[i : i + BATCH],
        )
        for i in range(0, len(labels), BATCH)
    ]
    batches = [calibration[i : i + BATCH] for i in range(0, len(calibration), BATCH)]
    quantized = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(batches, _floats),
        nncf.Dataset(items, lambda item: _floats(item[0])),
        metric,
        max_drop=1.0,  # bounds_metric's unit: 1 is the first bound reached
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(batches),
        ignored_scope=nncf.IgnoredScope(types=FLOAT_TYPES, validate=False),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=MAX_REVERTED, ranking_subset_size=RANKING_BATCHES
        ),
    )
    checked = check(reference, _answers(_compiled(quantized), images, heads, folds), labels)
    quantized_convolutions, convolutions = _convolutions(quantized)
    checked = dataclasses.replace(
        checked, int8_convolutions=quantized_convolutions, convolutions=convolutions
    )
    if served_reference is not None:
        served = _answers(_compiled(quantized, served_in), images, heads, folds)
        in_bf16 = check(served_reference, served, labels)
        as_served = Served(served_in, in_bf16, verdict(in_bf16, max_drop) is None)
        checked = dataclasses.replace(checked, served=as_served)
    for extra in quantized.get_results()[1:]:  # served: the probabilities alone, as the float IR
        quantized.remove_result(extra)
    int8_xml.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(quantized, str(int8_xml), compress_to_fp16=False)
    return checked


def with_features_output(model: Any) -> Any:
    """The model with a second output: the features its head reads (walking back from the head's
    MatMul through the standardisation)."""
    matmul = next(op for op in model.get_ordered_ops() if op.get_type_name() == "MatMul")
    node = matmul.input_value(0).get_node()
    while node.get_type_name() in _ELEMENTWISE:
        node = node.input_value(0).get_node()
    model.add_outputs([node.output(0)])
    return model


def _convolutions(model: Any) -> tuple[int, int]:
    """How many convolutions have a quantized input, of how many."""
    convolutions = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    quantized = [
        op for op in convolutions if op.input_value(0).get_node().get_type_name() == "FakeQuantize"
    ]
    return len(quantized), len(convolutions)


def bounds_metric(result: Checked, max_drop: float) -> float:
    """Accuracy control's metric: 1 minus the larger of the two bounds' shares used up (the
    disagreement over ``1 - MIN_AGREEMENT``, the accuracy drop over ``max_drop``). The float IR
    scores 1 (it agrees with itself; NNCF also divides by it, so not 0); an INT8 IR is within both
    bounds exactly when it scores at least 0, so NNCF's ``max_drop`` is 1 in this unit."""
    disagreement = (1 - result.agreement) / (1 - MIN_AGREEMENT)
    drop = result.drop / max_drop if max_drop > 0 else (np.inf if result.drop > 0 else 0.0)
    return 1 - float(max(disagreement, drop))


def check(float_answers: np.ndarray, int8_answers: np.ndarray, labels: np.ndarray) -> Checked:
    """The two IRs' classes for the same held-out photos, each by its fold's head."""
    if not len(labels):
        return Checked(0, 1.0, 1.0, 1.0)
    return Checked(
        photos=len(labels),
        float_accuracy=float((float_answers == labels).mean()),
        int8_accuracy=float((int8_answers == labels).mean()),
        agreement=float((float_answers == int8_answers).mean()),
    )


def _compiled(model: Any, precision: str = "f32") -> Callable[[np.ndarray], np.ndarray]:
    """The model compiled in f32 (the float IR, and the INT8 IR's layers kept in float), as
    accuracy control compiles it: the comparison is of the quantization alone, and the figures
    it steers by are the figures recorded; or in the ``precision`` this CPU serves in. Returns
    the features the head reads."""
    import openvino

    hint = {"INFERENCE_PRECISION_HINT": precision}
    compiled = openvino.Core().compile_model(model, "CPU", hint)
    return lambda batch: _features(compiled, batch)


def _floats(batch: np.ndarray) -> np.ndarray:
    return batch.astype(np.float32, copy=False)


def _features(compiled: Any, batch: np.ndarray) -> np.ndarray:
    return np.asarray(compiled(batch)[compiled.outputs[-1]])


def _answers(
    run: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    heads: Sequence[Head],
    folds: np.ndarray,
) -> np.ndarray:
    features = [
        run(_floats(images[start : start + BATCH])) for start in range(0, len(images), BATCH)
    ]
    return _judge(np.concatenate(features), heads, folds) if features else np.zeros(0, np.int64)


def _judge(features: np.ndarray, heads: Sequence[Head], folds: np.ndarray) -> np.ndarray:
    """Each photo's class by the head that held it out (one call per fold)."""
    answers = np.zeros(len(features), np.int64)
    for fold in np.unique(folds):
        rows = folds == fold
        answers[rows] = heads[int(fold)].predict(features[rows]).argmax(axis=1)
    return answers


def _remove(xml: Path) -> None:
    for path in (xml, xml.with_suffix(".bin")):
        path.unlink(missing_ok=True)
