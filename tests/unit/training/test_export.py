"""The OpenVINO engine against the TensorFlow one on dev photos, with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.imaging import preprocess
from app.ml import engines
from app.ml.devices import configure_devices
from app.store.versions import ModelStore
from tests.support.agreement import assert_within_tolerance

pytestmark = pytest.mark.slow


def test_openvino_and_tensorflow_agree_on_the_dev_photos(
    flowers_store: Path, flowers_dev: Path
) -> None:
    version = ModelStore(flowers_store).active()
    assert version is not None
    # every 4th in path order, so of every class, 310 in all: TensorFlow takes 40 ms a photo on
    # 2 cores, and the INT8 test below runs both OpenVINO IRs on all 1,238
    photos = sorted(flowers_dev.glob("*/*.jpg"))[::4]
    images = np.stack([preprocess(p.read_bytes()) for p in photos])
    tensorflow = engines.KerasEngine(version, 32, configure_devices())
    # the float IR at the float precision auto serves it in (INT8 has its own check, below)
    float_precision = engines.choose_precision("auto", engines.cpu_capabilities())
    openvino = engines.OpenVinoEngine.for_version(version, 32, float_precision)  # type: ignore[arg-type]
    expected = tensorflow.predict(images)
    served = openvino.predict(images)
    agreement = float((expected.argmax(1) == served.argmax(1)).mean())
    max_diff = float(np.abs(expected - served).max())
    print(
        f"\nengines on {len(photos)} dev photos: top-1 agreement {agreement:.4f}, "
        f"max |dp| {max_diff:.2e} (OpenVINO {openvino.precision})"
    )
    assert_within_tolerance(served, expected, openvino.precision)


def test_the_version_records_the_agreement_measured_at_publish(flowers_store: Path) -> None:
    version = ModelStore(flowers_store).active()
    assert version is not None
    record = json.loads((version.path / "metadata.json").read_text())["engines"]["openvino"]
    assert record["exported"] is True and record["artifact"] == "openvino/model.xml"
    assert record["images"] > 0
    tolerance = engines.TOLERANCES[record["precision"]]
    assert record["top1_agreement"] >= 0.99 and record["max_abs_diff"] <= tolerance.max_abs_diff


def test_the_versions_int8_ir_is_kept_within_both_bounds_on_held_out_folds(
    flowers_store: Path, flowers_dev: Path
) -> None:
    """Issue 26: the default recipe fine-tunes the published model's conv5 with the last fold
    kept out; its INT8 IR is calibrated on 300 other dev photos and checked on that fold's 247,
    each judged by the published head, which never saw them. Accuracy control steers by both
    bounds, so the IR is kept, and it serves with the float IR's answers."""
    pytest.importorskip("nncf")
    version = ModelStore(flowers_store).active()
    assert version is not None
    record = version.metadata.as_dict()["engines"]["openvino"]["int8"]
    held = record["held_out"]
    print(f"\nINT8 at publishing: {json.dumps(record)}")
    kept_out = version.metadata.as_dict()["metrics"]["fine_tuning"]["held_out"]
    assert (held["photos"], record["calibration_photos"]) == (kept_out["photos"], 300)
    assert held["photos"] == 247  # the last of 5 folds of the 1,238 dev photos
    assert (record["max_drop"], record["min_agreement"]) == (0.003, 0.99)
    assert held["drop"] <= 0.003 and held["agreement"] >= 0.99
    assert record["kept"] is True, record.get("reason")
    assert (version.path / engines.INT8_XML).is_file()
    photos = sorted(flowers_dev.glob("*/*.jpg"))
    images = np.stack([preprocess(p.read_bytes()) for p in photos])
    int8 = engines.OpenVinoEngine.for_version(version, 32, "int8")
    float_precision = engines.choose_precision("auto", engines.cpu_capabilities())
    served = engines.OpenVinoEngine.for_version(version, 32, float_precision)  # type: ignore[arg-type]
    agreement = float((int8.predict(images).argmax(1) == served.predict(images).argmax(1)).mean())
    print(f"INT8 and {served.precision} on all {len(photos)} dev photos: top-1 {agreement:.4f}")
    assert int8.precision == "int8" and agreement >= 0.99
