"""How far an engine at a precision may stray from the float32 Keras model (app.ml.engines)."""

from __future__ import annotations

import numpy as np
import pytest

from app.ml import engines


def precisions_to_test() -> list[object]:
    """f32 and auto everywhere; bf16 where this CPU has it, skipped with the reason elsewhere."""
    has_bf16 = engines.openvino_available() and "BF16" in engines.cpu_capabilities()
    skip_bf16 = pytest.mark.skipif(
        not has_bf16, reason="this CPU has no bf16 (OpenVINO lists no BF16)"
    )
    return ["auto", "f32", pytest.param("bf16", marks=skip_bf16)]


def assert_within_tolerance(served: np.ndarray, reference: np.ndarray, precision: str) -> None:
    """Every probability within the precision's bound; the class kept wherever it is clear-cut."""
    tolerance = engines.TOLERANCES[precision]
    difference = float(np.abs(served - reference).max())
    assert difference <= tolerance.max_abs_diff, f"{precision}: max |dp| {difference:.2e}"
    ranked = np.sort(reference, axis=1)
    clear_cut = ranked[:, -1] - ranked[:, -2] > tolerance.top1_margin
    same = served.argmax(axis=1) == reference.argmax(axis=1)
    assert same[clear_cut].all(), f"{precision}: a clear-cut class changed"
