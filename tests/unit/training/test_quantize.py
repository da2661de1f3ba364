"""INT8 at publishing: calibrated on some photos, checked on others, kept only within the bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.ml.engines import INT8_XML, OPENVINO_XML, choose_precision, cpu_capabilities
from app.options import TrainOptions
from app.training import quantize
from tests.conftest import FLOWERS_STORE_TIMEOUT_S, REPO
from tests.support.modelfactory import ColourHead, colour_kernel, colour_photos, tiny_classifier

CLASSES = ["blue", "green", "red"]


def test_calibration_and_check_photos_are_disjoint_seeded_and_in_proportion() -> None:
    labels = np.array([0] * 1000 + [1] * 500 + [2] * 100)
    calibrate, checked = quantize.split_photos(labels, seed=7)
    assert len(calibrate) == quantize.CALIBRATION_PHOTOS and len(checked) == quantize.CHECK_PHOTOS
    assert not set(calibrate.tolist()) & set(checked.tolist())
    counts = np.bincount(labels[calibrate], minlength=3)
    assert abs(counts[0] - 300 * 1000 / 1600) <= 2 and abs(counts[2] - 300 * 100 / 1600) <= 2
    again, _ = quantize.split_photos(labels, seed=7)
    other, _ = quantize.split_photos(labels, seed=8)
    assert (again == calibrate).all() and not (other == calibrate).all()
    few = quantize.split_photos(np.array([0, 0, 1, 1, 1]), seed=1)
    assert (len(few[0]), len(few[1])) == (2, 3)  # half to calibrate, the rest to check


def test_a_model_is_quantized_checked_and_written(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    import openvino

    from app.training.export import write_openvino_ir

    model = tiny_classifier(3, weights=colour_kernel(CLASSES), conv=True)
    write_openvino_ir(model, tmp_path / OPENVINO_XML)
    calibration, _ = colour_photos(CLASSES, 4, seed=1)
    images, labels = colour_photos(CLASSES, 6, seed=2)
    # two "folds": each photo judged by the head that held it out
    heads, folds = [ColourHead(CLASSES), ColourHead(CLASSES)], np.arange(18) % 2
    checked = quantize.quantize(
        tmp_path / OPENVINO_XML,
        tmp_path / INT8_XML,
        calibration,
        images,
        labels,
        heads,
        folds,
        max_drop=TrainOptions().int8_max_drop,
    )
    assert (checked.photos, checked.float_accuracy, checked.int8_accuracy) == (18, 1.0, 1.0)
    assert checked.agreement == 1.0 and checked.drop == 0.0
    # checked again with both IRs in bf16 where this CPU has it (else f32 is all it serves in)
    served_in = choose_precision("auto", cpu_capabilities())
    record = checked.as_record()
    assert record["compiled_in"] == "f32" and record["held_out"]["photos"] == 18
    if served_in == "f32":
        assert checked.served is None and "served" not in record
    else:
        assert checked.served is not None and checked.served.precision == "bf16"
        assert (checked.served.checked.photos, checked.served.checked.agreement) == (18, 1.0)
        assert record["served"]["within_bounds"] is True
        assert "int8_convolutions" not in record["served"]
    ir = openvino.Core().read_model(str(tmp_path / INT8_XML))
    kinds = [op.get_type_name() for op in ir.get_ordered_ops()]
    assert "FakeQuantize" in kinds  # the convolution's input and weights: INT8
    # the head stays in float: no quantizer feeds its MatMul
    matmul = next(op for op in ir.get_ordered_ops() if op.get_type_name() == "MatMul")
    feeding = {matmul.input_value(i).get_node().get_type_name() for i in range(2)}
    assert "FakeQuantize" not in feeding
    assert len(ir.outputs) == 1  # the features output used to check it is not served


def test_only_photos_a_held_out_head_judged_are_checked_on() -> None:
    labels = np.array([0, 1] * 20)
    fold_of = np.where(np.arange(40) < 30, np.arange(40) % 5, -1)
    calibrate, checked = quantize.split_photos(labels, 3, fold_of)
    assert len(calibrate) == 20 and (fold_of[checked] >= 0).all()
    assert not set(calibrate.tolist()) & set(checked.tolist())


@pytest.mark.parametrize(
    ("drop", "agreement", "verdict"),
    [
        (0.003, 0.99, None),
        (0.0031, 1.0, "accuracy drop 0.0031 > 0.003"),
        (0.0, 0.9899, "top-1 agreement 0.9899 < 0.99"),
    ],
)
def test_the_bound_is_on_both_the_drop_and_the_agreement(
    drop: float, agreement: float, verdict: str | None
) -> None:
    result = quantize.Checked(300, 0.95, 0.95 - drop, agreement)
    assert quantize.verdict(result, 0.003) == verdict
    # the check in bf16 decides how the IR serves, not whether it is kept
    in_bf16 = quantize.Served("bf16", result, verdict is None)
    in_f32 = quantize.Checked(300, 0.95, 0.95, 1.0, served=in_bf16)
    assert quantize.verdict(in_f32, 0.003) is None


@pytest.mark.parametrize("max_drop", [0.003, 0.01])
@pytest.mark.parametrize("drop", [-0.01, 0.0, 0.002, 0.003, 0.0031, 0.02])
@pytest.mark.parametrize("agreement", [1.0, 0.995, 0.99, 0.9899, 0.9])
def test_accuracy_control_steers_by_the_bound_nearer_to_being_broken(
    drop: float, agreement: float, max_drop: float
) -> None:
    """NNCF stops reverting layers once the metric is within 1 of the float IR's: that is
    exactly when the IR would be kept."""
    float_ir = quantize.bounds_metric(quantize.Checked(300, 0.95, 0.95, 1.0), max_drop)
    result = quantize.Checked(300, 0.95, 0.95 - drop, agreement)
    within = float_ir - quantize.bounds_metric(result, max_drop) <= 1 + 1e-9
    assert float_ir == 1.0
    assert within is (quantize.verdict(result, max_drop) is None)


@pytest.mark.slow
@pytest.mark.timeout(FLOWERS_STORE_TIMEOUT_S)
def test_a_conv5_fine_tuned_for_the_published_model_is_quantized_and_checked_on_its_kept_out_fold(
    tmp_path: Path, flowers_dev: Path
) -> None:
    """With --no-fine-tune-in-folds the published model's fine-tuning keeps the last fold out, so
    the INT8 IR of a fine-tuned conv5 is judged on photos neither conv5 nor the head saw: 12 dev
    photos of each of 3 classes, 3 folds, real ImageNet weights."""
    pytest.importorskip("nncf")
    data = tmp_path / "data"
    for folder in sorted(path for path in flowers_dev.iterdir() if path.is_dir())[:3]:
        (data / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:12]:
            (data / folder.name / photo.name).symlink_to(photo)
    store = tmp_path / "store"
    result = subprocess.run(
        [
            sys.executable, "-m", "app.train", "--data-dir", str(data), "--model-store",
            str(store), "--feature-cache", str(tmp_path / "cache"), "--folds", "3",
            "--fine-tune-epochs", "1", "--no-fine-tune-in-folds",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=FLOWERS_STORE_TIMEOUT_S,
    )  # fmt: skip
    if "could not obtain the ImageNet ResNet-50 weights" in result.stderr:
        pytest.skip(f"no ImageNet weights here: {result.stderr.strip()}")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    metadata = json.loads((store / "1" / "metadata.json").read_text())
    held_out = metadata["metrics"]["fine_tuning"]["held_out"]
    assert held_out["photos"] == 12 and metadata["metrics"]["trained_on"] == 24
    record = metadata["engines"]["openvino"]["int8"]
    print(f"\nkept out: {json.dumps(held_out)}\nINT8: {json.dumps(record)}")
    assert "held_out" in record, record  # made and checked, whatever the verdict
    # every kept-out photo, none used to calibrate (the 24 others calibrate: half of 36, wanted)
    assert (record["held_out"]["photos"], record["calibration_photos"]) == (12, 18)
    # the float IR judged by the published head on them is the fine-tuned model measured above
    assert abs(record["held_out"]["float_accuracy"] - held_out["fine_tuned"]) <= 1 / 12 + 1e-9
    assert record["kept"] is (
        quantize.verdict(_checked(record["held_out"]), record["max_drop"]) is None
    )
    if "served" in record:  # checked again in bf16, where this CPU has it
        served = record["served"]
        assert served["photos"] == 12 and served["compiled_in"] == "bf16"
        verdict = quantize.verdict(_checked(served), record["max_drop"])
        assert served["within_bounds"] is (verdict is None)
    assert (store / "1" / INT8_XML).is_file() is record["kept"]


def _checked(held_out: dict[str, float]) -> quantize.Checked:
    return quantize.Checked(
        int(held_out["photos"]),
        held_out["float_accuracy"],
        held_out["int8_accuracy"],
        held_out["agreement"],
    )
