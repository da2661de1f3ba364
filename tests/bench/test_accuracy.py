"""bench.accuracy: each engine's held-out accuracy, read from the check publishing made in the
arithmetic that engine serves in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from app.ml import engines
from app.store.versions import ModelStore
from bench import accuracy, report
from tests.support.modelfactory import colour_kernel, publish_tiny

COLOURS = ["blue", "green", "red"]


def test_each_arithmetic_reads_the_check_made_in_it(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    store = ModelStore(tmp_path / "store")
    quantized = publish_tiny(store, COLOURS, weights=colour_kernel(COLOURS), int8=True)
    # the same IRs republished with a record whose every number differs: a wrong field shows
    held_out = {"photos": 60, "float_accuracy": 0.91, "int8_accuracy": 0.9, "agreement": 0.98}
    served = {"photos": 60, "float_accuracy": 0.89, "int8_accuracy": 0.88, "agreement": 0.97}
    record = {"kept": True, "compiled_in": "f32", "held_out": held_out}
    served_in_bf16 = {**served, "compiled_in": "bf16", "within_bounds": True}
    shutil.copytree(quantized.path, tmp_path / "copy")
    metadata = {"classes": COLOURS, "engines": {"openvino": {"int8": record}}}
    metadata["engines"]["openvino"]["int8"]["served"] = served_in_bf16
    version = store.publish(tmp_path / "copy", metadata)

    f32 = engines.OpenVinoEngine.for_version(version, 4, "f32")
    assert accuracy.recorded(version, f32) == {"photos": 60, "arithmetic": "f32", "accuracy": 0.91}
    int8 = engines.OpenVinoEngine.for_version(version, 4, "int8")
    bf16_here = "BF16" in engines.cpu_capabilities()
    assert int8.float_precision == ("bf16" if bf16_here else "f32")
    expected = (
        {"accuracy": 0.88, "agreement": 0.97} if bf16_here else {"accuracy": 0.9, "agreement": 0.98}
    )
    assert accuracy.recorded(version, int8) == {
        "photos": 60,
        "arithmetic": int8.float_precision,
        **expected,
    }
    if bf16_here:
        bf16 = engines.OpenVinoEngine.for_version(version, 4, "bf16")
        assert accuracy.recorded(version, bf16) == {
            "photos": 60,
            "arithmetic": "bf16",
            "accuracy": 0.89,
        }


def test_an_engine_without_a_check_in_its_arithmetic_has_none(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, COLOURS, openvino=True)  # no INT8 step: no held-out check
    engine = engines.OpenVinoEngine.for_version(version, 4, "f32")
    assert accuracy.recorded(version, engine) is None
    flipped = engines.FlipAveraged(engine)  # another computation than any check's
    assert accuracy.recorded(version, flipped) is None
    assert f"- {accuracy.summary(None, bold='**')}" == (
        "- held-out accuracy: none recorded for this arithmetic at publishing"
    )


def _engine(name: str, held_out: dict[str, Any] | None) -> dict[str, Any]:
    level = {"concurrency": 16, "images_per_request": 1, "images_per_s": 140.4}
    return {
        "name": name,
        "ratios": {"best_raw_images_per_s": 243.2, "service_c16_vs_pipeline_limit": 0.771},
        "service": {"batching": [{**level, "concurrency": 1, "images_per_s": 111.2}, level]},
        "held_out": held_out,
    }


def test_the_report_sets_the_engines_side_by_side_with_their_accuracy() -> None:
    found = {"photos": 614, "arithmetic": "f32", "accuracy": 0.9349, "agreement": 1.0}
    lines = report._side_by_side([_engine("openvino (int8)", found), _engine("tensorflow", None)])
    assert lines[4:6] == [
        "| openvino (int8) | 243.2 | 140.4 (16) | 0.771 | 0.9349 |",
        "| tensorflow | 243.2 | 140.4 (16) | 0.771 | - |",
    ]
    assert f"- {accuracy.summary(found, bold='**')}" == (
        "- held-out accuracy (recorded at publishing, 614 photos kept out of training and "
        "calibration, float layers in f32): **0.9349**; top-1 agreement with the float IR 1.0000"
    )
