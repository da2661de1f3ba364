"""bench.report: INT8 set against the float precisions measured in the same run."""

from __future__ import annotations

from typing import Any

from bench import report


def _engine(name: str, raw: dict[int, float]) -> dict[str, Any]:
    return {"name": name, "raw": [{"batch_size": b, "images_per_s": v} for b, v in raw.items()]}


def test_int8_is_set_against_bf16_and_f32_at_each_shared_batch_and_at_each_ones_best() -> None:
    engines = [
        _engine("openvino (int8)", {1: 191.1, 8: 249.7, 16: 254.6}),
        _engine("openvino (bf16)", {1: 131.7, 8: 203.0, 16: 217.1}),
        _engine("openvino (f32)", {1: 35.0, 8: 42.3}),  # no batch 16: not compared there
    ]
    assert report.precision_ratios(engines, "bf16") == {
        "1": 1.45,
        "8": 1.23,
        "16": 1.17,
        "best": 1.17,  # 254.6 (INT8 at 16) over 217.1 (bf16 at 16)
    }
    assert report.precision_ratios(engines, "f32") == {
        "1": 5.46,
        "8": 5.9,
        "best": 6.02,  # 254.6 over 42.3, each at its own best batch
    }
    assert report._precision_lines(engines) == [
        "- INT8 / bf16, raw: **1.45x** at batch 1, **1.23x** at batch 8, **1.17x** at batch 16, "
        "**1.17x** at each one's best batch (target >= 1.6x where the CPU has VNNI or AMX)",
        "- INT8 / f32, raw: **5.46x** at batch 1, **5.90x** at batch 8, **6.02x** at each one's "
        "best batch",
        "",
    ]


def test_a_run_without_int8_or_without_the_other_precision_has_no_ratio() -> None:
    bf16 = _engine("openvino (bf16)", {1: 131.7})
    assert report.precision_ratios([bf16, _engine("tensorflow", {1: 50.0})], "bf16") is None
    assert report.precision_ratios([_engine("openvino (int8)", {1: 191.1}), bf16], "f32") is None
    assert report._precision_lines([bf16, _engine("openvino (f32)", {1: 35.0})]) == []
