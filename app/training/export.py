"""Export the OpenVINO artifact while publishing, and measure how closely it agrees with Keras.

Servers then load a ready IR (no conversion at startup).  The agreement (top-1 and the largest
probability difference on reference photos, at the precision the CPU engine will use) is
recorded in the version's metadata.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from app.imaging import IMAGE_SIZE
from app.ml import ir_passes
from app.ml.engines import OPENVINO_XML, OpenVinoEngine, openvino_available
from app.training import dataset as datasets

if TYPE_CHECKING:
    from app.training.pipeline import TrainedModel
    from app.training.progress import Reporter

logger = logging.getLogger(__name__)

AGREEMENT_BATCH: Final = 16


def export_openvino(trained: TrainedModel, folder: Path, reporter: Reporter) -> dict[str, Any]:
    if not openvino_available():
        reporter.line(
            "  OpenVINO is not installed: no OpenVINO artifact (pip install '.[openvino]')"
        )
        return {"exported": False, "reason": "openvino is not installed"}
    started = time.monotonic()
    xml = folder / OPENVINO_XML
    xml.parent.mkdir(parents=True, exist_ok=True)
    write_openvino_ir(trained.classifier, xml)
    agreement = measure_agreement(trained, xml)
    reporter.line(
        f"  OpenVINO IR exported in {time.monotonic() - started:.1f}s; agreement with Keras on "
        f"{agreement['images']} reference photos: top-1 {agreement['top1_agreement']:.4f}, "
        f"max |dp| {agreement['max_abs_diff']:.4f} ({agreement['precision']})"
    )
    return {"exported": True, "artifact": OPENVINO_XML, **agreement}


def write_openvino_ir(model: Any, xml: Path) -> None:
    """Convert a Keras model to an fp32 OpenVINO IR with a dynamic batch dimension and one output,
    the probabilities, its channel reordering as one Gather (:mod:`app.ml.ir_passes`).

    On TensorFlow, a traced inference function goes straight to ``openvino.convert_model``
    (about half the time of ``model.export(format="openvino")``, which builds an export archive
    first); other backends use Keras's exporter.
    """
    import openvino

    from app.ml.devices import keras

    if keras.backend.backend() != "tensorflow":
        model.export(str(xml), format="openvino", verbose=False)
        return
    import tensorflow as tf

    spec = tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 3), tf.float32, name="image")
    traced = tf.function(lambda batch: model(batch, training=False)).get_concrete_function(spec)
    converted = openvino.convert_model(traced)
    for stray in converted.get_results()[1:]:
        # the Resizing layer's shape slices, which the conversion keeps as outputs of their own:
        # the IR's one output is the probabilities (what OpenVINO Model Server or Triton list)
        converted.remove_result(stray)
    ir_passes.rewrite(converted)  # the same answers without reference kernels
    openvino.save_model(converted, str(xml), compress_to_fp16=False)


def measure_agreement(trained: TrainedModel, xml: Path) -> dict[str, Any]:
    """Run the IR on the reference photos and compare with the Keras model's probabilities."""
    images, loaded = datasets.load_images(trained.data, trained.reference_indices)
    rows = [trained.reference_indices.index(index) for index in loaded]
    classes = trained.data.class_names
    engine = OpenVinoEngine(xml, 0, classes, AGREEMENT_BATCH, trained.config.precision)
    ov_probs = engine.predict(images)
    keras_probs = trained.reference_probabilities[rows]
    same = ov_probs.argmax(axis=1) == keras_probs.argmax(axis=1)
    return {
        "precision": engine.precision,
        "images": len(rows),
        "top1_agreement": float(same.mean()) if len(rows) else 1.0,
        "max_abs_diff": float(np.abs(ov_probs - keras_probs).max()) if len(rows) else 0.0,
    }
