"""Training progress for people (a bar, one line per epoch) and for machines (JSON-lines events).

The events follow the protocol of :mod:`app.events`; the server's retrain jobs start
``python -m app.train --progress-file F`` and read ``F`` back: progress is what the child reports,
never a guess.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from app.events import EventKind, append

_BAR_WIDTH = 28
_EVENT_INTERVAL_S = 0.5


class Reporter:
    """Prints progress to ``stream`` and appends machine-readable events to ``events_path``."""

    def __init__(self, stream: TextIO | None = None, events_path: Path | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.events_path = events_path
        self._phase = ""
        self._started = time.monotonic()
        self._last_event = 0.0
        self._last_printed_decile = -1

    def event(self, kind: EventKind, **fields: Any) -> None:
        if self.events_path is not None:
            append(self.events_path, kind, **fields)

    def phase(self, name: str, detail: str = "") -> None:
        self._phase = name
        self._started = time.monotonic()
        self._last_printed_decile = -1
        self.line(f"[{name}] {detail}".rstrip())
        self.event(EventKind.PHASE, phase=name, detail=detail)

    def progress(self, done: int, total: int, unit: str = "img") -> None:
        """Advance the current phase's bar to ``done`` of ``total``."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        fraction = done / total if total else 1.0
        self._draw(done, total, fraction, done / elapsed, unit)
        now = time.monotonic()
        if now - self._last_event >= _EVENT_INTERVAL_S or done >= total:
            self._last_event = now
            self.event(
                EventKind.PROGRESS, phase=self._phase, done=done, total=total, fraction=fraction
            )

    def _draw(self, done: int, total: int, fraction: float, rate: float, unit: str) -> None:
        filled = int(_BAR_WIDTH * fraction)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        eta = (total - done) / rate if rate > 0 else 0.0
        text = f"  [{bar}] {done}/{total} {_speed(rate, unit)} eta {eta:.0f}s"
        if self.stream.isatty():
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
            self.stream.flush()
            return
        decile = int(fraction * 10)
        if decile != self._last_printed_decile:
            self._last_printed_decile = decile
            self.line(text)

    def epoch(self, phase: str, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        shown = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        self.line(f"  {phase} epoch {epoch}/{epochs}  {shown}")
        self.event(EventKind.EPOCH, phase=phase, epoch=epoch, epochs=epochs, metrics=metrics)

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _speed(rate: float, unit: str) -> str:
    """``12.5 img/s``, or ``41.2 s/fold`` for what takes more than a second each."""
    if rate >= 1 or rate <= 0:
        return f"{rate:.1f} {unit}/s"
    return f"{1 / rate:.1f} s/{unit.removesuffix('s')}"
