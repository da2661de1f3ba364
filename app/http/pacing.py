"""How fast a body must come: no pause longer than the idle timeout, and, past its first idle
timeout (a grace for slow starts), at least ``min_rate_bytes_s`` in every later window of that
length.  A client that declares a Content-Length and then stops sending, sends a byte now and
then, or starts fast and then trickles, would otherwise hold the request, its connection and the
upload budget it holds for as long as it likes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

from app.errors import UploadStalled
from app.inference.limits import UploadLimits


async def paced(body: AsyncIterator[bytes], limits: UploadLimits) -> AsyncIterator[bytes]:
    """The body's chunks; UploadStalled (408, connection closed) as soon as it is too slow."""
    iterator = aiter(body)
    pace = Pace(limits, time.monotonic())
    while True:
        try:
            chunk = await asyncio.wait_for(anext(iterator), pace.wait(time.monotonic()))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise pace.stalled(time.monotonic()) from None
        pace.arrived(len(chunk), time.monotonic())
        yield chunk


class Pace:
    """One body's pace: when it last sent, what the current window has brought."""

    def __init__(self, limits: UploadLimits, now: float) -> None:
        self.idle_s = limits.idle_timeout_s
        self.window_s = limits.idle_timeout_s
        self.need = limits.min_rate_bytes_s * self.window_s  # bytes per window (0: no minimum)
        self.last = now
        self.window_end = now + self.window_s  # the first window is the grace: never judged
        self.judged = False  # whether the current window is judged
        self.window_bytes = 0

    def wait(self, now: float) -> float:
        """How long the next chunk may take before the body is too slow."""
        deadline = self.last + self.idle_s
        if self.judged and self.need and self.window_bytes < self.need:
            deadline = min(deadline, self.window_end)
        return max(deadline - now, 0.0)

    def arrived(self, size: int, now: float) -> None:
        self._close_windows(now)
        self.window_bytes += size
        self.last = now

    def stalled(self, now: float) -> UploadStalled:
        if now - self.last >= self.idle_s:
            return UploadStalled(f"the upload stalled for more than {self.idle_s:g}s")
        return self._too_slow()

    def _close_windows(self, now: float) -> None:
        if now < self.window_end:
            return
        if self.judged and self.window_bytes < self.need:
            raise self._too_slow()
        empty = math.floor((now - self.window_end) / self.window_s)  # whole windows since
        if empty and self.need:
            raise self._too_slow()
        self.window_end += (empty + 1) * self.window_s
        self.judged, self.window_bytes = True, 0

    def _too_slow(self) -> UploadStalled:
        rate = int(self.need / self.window_s)
        return UploadStalled(
            f"the upload is slower than {rate:,} bytes/s (the minimum in every {self.window_s:g} "
            "s after the first)"
        )
