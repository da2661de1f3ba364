"""The progress bar people read: a rate they can use, fast units or slow."""

from __future__ import annotations

import io
from unittest import mock

from app.training.progress import Reporter


def _drawn(done: int, total: int, elapsed_s: float, unit: str) -> str:
    stream = io.StringIO()
    reporter = Reporter(stream)
    with mock.patch("app.training.progress.time.monotonic", return_value=0.0):
        reporter.phase("cv")
    with mock.patch("app.training.progress.time.monotonic", return_value=elapsed_s):
        reporter.progress(done, total, unit=unit)
    return stream.getvalue().splitlines()[-1]


def test_fast_units_are_counted_per_second() -> None:
    assert _drawn(50, 100, 2.0, "img").endswith("50/100 25.0 img/s eta 2s")


def test_slow_units_are_seconds_each_never_zero_per_second() -> None:
    line = _drawn(2, 5, 80.0, "folds")
    assert line.endswith("2/5 40.0 s/fold eta 120s")
    assert "0.0 folds/s" not in line
