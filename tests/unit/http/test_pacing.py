"""A body's pace, with the clock given: the first window is a grace, every later window must
bring the minimum, and no pause may outlast the idle timeout."""

from __future__ import annotations

import pytest

from app.errors import UploadStalled
from app.http.pacing import Pace
from app.inference.limits import UploadLimits

LIMITS = UploadLimits(1000, 1, idle_timeout_s=10.0, min_rate_bytes_s=100)  # 1,000 a window


def test_the_first_window_is_a_grace_whatever_arrives() -> None:
    pace = Pace(LIMITS, now=0.0)
    pace.arrived(1, now=9.0)
    assert pace.wait(now=9.0) == pytest.approx(10.0)  # only the idle timeout bounds the wait


def test_a_judged_window_short_of_the_minimum_ends_the_body_at_its_end() -> None:
    pace = Pace(LIMITS, now=0.0)
    pace.arrived(1, now=10.5)  # the second window, judged, has begun
    assert pace.wait(now=11.0) == pytest.approx(9.0)  # its end, 20.0: it lacks 999 bytes
    assert "slower than 100 bytes/s" in str(pace.stalled(now=20.0))


def test_a_window_that_brought_the_minimum_is_followed_by_the_next() -> None:
    pace = Pace(LIMITS, now=0.0)
    pace.arrived(1000, now=12.0)
    pace.arrived(10, now=21.0)  # closes the window [10, 20), which brought 1,000: enough
    with pytest.raises(UploadStalled, match="slower than"):
        pace.arrived(10, now=31.0)  # closes [20, 30), which brought only 10


def test_windows_that_passed_empty_are_too_slow() -> None:
    pace = Pace(LIMITS, now=0.0)
    pace.arrived(1000, now=12.0)
    with pytest.raises(UploadStalled):
        pace.arrived(5000, now=35.0)


def test_a_pause_longer_than_the_idle_timeout_is_a_stall() -> None:
    pace = Pace(LIMITS, now=0.0)
    pace.arrived(1000, now=1.0)
    assert "stalled for more than 10s" in str(pace.stalled(now=11.5))
