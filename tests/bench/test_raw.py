"""The raw benchmark's arithmetic: what one decode per image costs the pipeline limit."""

from __future__ import annotations

import pytest

from bench import raw


def test_each_photo_counts_once_at_its_own_median() -> None:
    # a large photo (3 ms) and a small one (1 ms), the small one timed more often and once
    # stretched by a preemption: the loads send both equally, so the cost is their mean, 2 ms
    timings = [[0.003, 0.003], [0.001, 0.001, 0.001, 0.001, 0.050]]
    assert raw.mean_of_medians(timings) == pytest.approx(0.002)


def test_the_pipeline_limit_adds_the_decode_to_the_engine() -> None:
    # 250 img/s is 4 ms an image; with a 1 ms decode, 5 ms: 200 img/s
    assert raw.pipeline_limit(250.0, 1.0) == pytest.approx(200.0)
